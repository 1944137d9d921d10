"""The Callback base: everything around the training step that is not the step itself.

The Trainer owns the loop and the TrainModule owns the step; logging, throughput, checkpoints,
evaluations, profiling and so on are callbacks. A callback sees the trainer (`self.trainer`)
and reacts to the hooks below. Every hook has an empty default, so a callback overrides only
what it needs.

Order: callbacks run in descending `priority` (higher first; ties keep registration order).
The built-ins use:

    checkpointer      100   (saves before anything slow runs on a save step)
    config_saver       90
    lm_evaluator       50   (records eval metrics before they are logged)
    speed_monitor      10   (records throughput metrics before they are logged)
    garbage_collector   0
    metrics_writer    -10   (consumes metrics: runs after producers)
    console_logger    -20

The life of a run, as the hooks see it (all ranks call every hook; rank-0-only work such as
printing checks `self.trainer.is_rank0`):

    post_attach()                      after the trainer is built and every callback attached
    post_checkpoint_loaded(path)       after a resume / load_path load (before pre_train)
    pre_train()                        once, before the first step
    for each step:
        pre_load_batch()               before the trainer asks the data loader for a batch
        pre_step(batch)                the batch is loaded; trainer.global_step is still the
                                       previous step; batch = {"input_ids": (N, T) LongTensor}
        post_train_batch()             forward/backward done, optimizer step not taken yet
        post_step()                    optimizer stepped; trainer.global_step and
                                       trainer.global_train_tokens now count this step.
                                       Producers call trainer.record_metric(name, value) here.
        log_metrics(step, metrics)     only on steps whose metrics are logged (every
                                       trainer.metrics_collect_interval steps, the last step,
                                       and any step where a metric was recorded with
                                       force_log=True): `metrics` is the full record
                                       (plain floats / ints / None, keys of docs/CONTRACTS.md)
    pre_checkpoint_commit(staging)     rank 0, a checkpoint's files are written to its staging
                                       dir and not yet committed: add files (config_saver)
    post_checkpoint_saved(path)        after a checkpoint was committed (path = stepN dir)
    post_train()                       after the last step, also after a graceful stop
                                       (SIGTERM/SIGINT); the checkpointer writes the final
                                       checkpoint here
    on_error(exc)                      the loop raised (non-finite loss, a bug, OOM)
    close()                            always, last; release files, threads, GC settings

State: `state_dict()` / `load_state_dict(state)` hold whatever a callback needs to carry
across a resume (plain Python values and tensors). The trainer saves them per callback name in
every checkpoint and restores them before `pre_train`.

Configs: each built-in callback is configured by `trainer.callbacks.<name>` of the experiment
config (engine.config.trainer) and skipped when `enabled = false`. engine/train/callbacks/
registry.py maps names to classes; new callbacks add one entry there.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Dict

if TYPE_CHECKING:  # the trainer imports callbacks; callbacks only need its type
    from .trainer import Trainer


class Callback:
    """Base class of every callback; see the module docstring for the hooks and their order."""

    #: Higher runs first. Metric producers must outrank metric consumers.
    priority: ClassVar[int] = 0
    #: The config name under trainer.callbacks (also the key of its state in checkpoints).
    name: ClassVar[str] = "callback"

    def __init__(self) -> None:
        self._trainer: "Trainer | None" = None

    @property
    def trainer(self) -> "Trainer":
        if self._trainer is None:
            raise RuntimeError(f"callback {self.name!r} is not attached to a trainer")
        return self._trainer

    def attach(self, trainer: "Trainer") -> None:
        self._trainer = trainer

    # ---- hooks (see module docstring) ---------------------------------------------------
    def post_attach(self) -> None:
        pass

    def post_checkpoint_loaded(self, path: Path) -> None:
        pass

    def pre_train(self) -> None:
        pass

    def pre_load_batch(self) -> None:
        pass

    def pre_step(self, batch: Dict[str, Any]) -> None:
        pass

    def post_train_batch(self) -> None:
        pass

    def post_step(self) -> None:
        pass

    def log_metrics(self, step: int, metrics: Dict[str, Any]) -> None:
        pass

    def pre_checkpoint_commit(self, staging_dir: Path) -> None:
        """Rank 0, before a checkpoint is committed: add files to its staging directory."""

    def post_checkpoint_saved(self, path: Path) -> None:
        pass

    def post_train(self) -> None:
        pass

    def on_error(self, exc: BaseException) -> None:
        pass

    def close(self) -> None:
        pass

    # ---- resumable state ------------------------------------------------------------------
    def state_dict(self) -> Dict[str, Any]:
        return {}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        pass
