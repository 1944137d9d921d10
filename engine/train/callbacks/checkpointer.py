"""Saves checkpoints on schedule and a final one at the end (also after SIGTERM/SIGINT).

Permanent checkpoints every `save_interval` steps (the newest `keep` stay, and every one at a
multiple of `keep_every`), ephemeral ones every
`ephemeral_save_interval` steps (only the newest stays: cheap insurance against preemption).
The mechanics (temp dir, marker, atomic rename, pruning, async writes) are engine.checkpoint's.
"""

from __future__ import annotations

import torch

from engine.checkpoint import Checkpointer
from engine.config.trainer import CheckpointerConfig

from ..callback import Callback


class CheckpointerCallback(Callback):
    name = "checkpointer"
    priority = 100

    def __init__(self, config: CheckpointerConfig):
        super().__init__()
        self.config = config
        self.saver: Checkpointer | None = None
        self.last_saved_step: int | None = None

    def pre_train(self) -> None:
        trainer = self.trainer
        # Async writes pay off when the step runs on a GPU; on CPU the writer thread would only
        # compete with training for the same cores.
        use_async = self.config.save_async and trainer.device.type == "cuda"
        self.saver = Checkpointer(trainer.save_folder, rank=trainer.rank, world_size=trainer.world_size,
                                  keep=self.config.keep, keep_every=self.config.keep_every,
                                  async_save=use_async,
                                  process_group=trainer.cpu_group if use_async else None)
        self.saver.remove_stale_staging()
        if trainer.loaded_from is not None and trainer.loaded_from.name == f"step{trainer.global_step}":
            self.last_saved_step = trainer.global_step  # no need to save the step we resumed from

    def _save(self, ephemeral: bool) -> None:
        trainer = self.trainer
        trainer.check_loss_finite()
        with trainer.excluded_time():
            committed = self.saver.save(trainer.global_step, trainer.dcp_state(), trainer.state_dict(),
                                        ephemeral=ephemeral, on_staged=self._on_staged)
        self.last_saved_step = trainer.global_step
        if committed is not None:
            self._announce(committed)

    def _on_staged(self, staging_dir) -> None:
        for callback in self.trainer.callbacks_in_order:
            callback.pre_checkpoint_commit(staging_dir)

    def _announce(self, path) -> None:
        self.trainer.log(f"checkpoint saved: {path}")
        for callback in self.trainer.callbacks_in_order:
            callback.post_checkpoint_saved(path)

    def _finalize(self) -> None:
        if self.saver is not None and self.saver.pending_step is not None:
            with self.trainer.excluded_time():
                committed = self.saver.finalize()
            if committed is not None:
                self._announce(committed)

    def post_step(self) -> None:
        trainer = self.trainer
        step = trainer.global_step
        if step % trainer.metrics_collect_interval == 0:
            self._finalize()  # commit an async save at a step every rank reaches together
        if step >= trainer.stop_step:
            return  # post_train writes the final checkpoint
        if step % self.config.save_interval == 0:
            self._save(ephemeral=False)
        elif self.config.ephemeral_save_interval and step % self.config.ephemeral_save_interval == 0:
            self._save(ephemeral=True)

    def post_train(self) -> None:
        trainer = self.trainer
        if trainer.global_step > 0 and self.last_saved_step != trainer.global_step:
            self._save(ephemeral=False)
        self._finalize()

    def on_error(self, exc: BaseException) -> None:
        # A save already written for an earlier, healthy step is still worth committing; with
        # several ranks that needs a barrier the failed rank may never reach, so only alone.
        if self.trainer.world_size == 1 and self.saver is not None and self.saver.pending_step is not None:
            self.saver.finalize()
