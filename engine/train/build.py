"""Config -> a ready Trainer: process group, seeds, model, TrainModule, data, callbacks.

Also decides where the weights come from (engine/run.py's docstring has the precedence) and
says so in one log line.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Optional, Sequence

import torch

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

from engine import checkpoint
from engine.config import DurationUnit, ExperimentConfig
from engine.errors import UserError
from engine.run_dir import CONFIG_FILE

from .callbacks.registry import build_callbacks
from .trainer import Trainer, seed_all


@dataclass
class TrainingEnv:
    trainer: Trainer
    is_rank0: bool
    teardown: Callable[[], None]
    restore: Callable[[], None]


def steps_for(cfg: ExperimentConfig, duration, batches_per_epoch: Optional[int], field: str) -> int:
    if duration.unit == DurationUnit.epochs:
        if not batches_per_epoch:
            raise UserError(field, "a duration in epochs needs a dataset of known size")
        return duration.value * batches_per_epoch
    return cfg.steps_for(duration)


# What decides the tensors' names and shapes (rope_theta, init_std, dtype, ... may change freely).
_SHAPE_FIELDS = ("family", "d_model", "n_layers", "n_heads", "kv_heads", "mlp_hidden", "vocab_size",
                 "qk_norm", "tie_embeddings", "mlp", "attention", "norm", "block")


def check_same_model(cfg: ExperimentConfig, path: Path) -> None:
    """A run dir reused with another architecture would fail deep inside DCP with a shape error;
    compare with the config saved in the checkpoint (config_saver) and say which fields differ."""
    from engine.config import ModelConfig

    saved_file = path / CONFIG_FILE
    if not saved_file.is_file():
        return
    try:
        saved = ModelConfig.model_validate(tomllib.loads(saved_file.read_text()).get("model", {}))
    except Exception:  # unreadable or from another schema version: let the load itself decide
        return
    differ = [f"model.{name} {getattr(saved, name)!r} -> {getattr(cfg.model, name)!r}" for name in _SHAPE_FIELDS
              if getattr(saved, name) != getattr(cfg.model, name)]
    if differ:
        raise UserError("model", f"{path} holds a different model ({', '.join(differ[:3])}): use another "
                        "RUN_NAME / --run-dir / trainer.save_folder, or the checkpoint's own config")


def restore_weights(trainer: Trainer, cfg: ExperimentConfig, save_folder: Path) -> str:
    """Resume from the save folder, else load weights from load_path, else keep the fresh init.
    Returns the one line that says which."""
    group = trainer.cpu_group
    if not cfg.trainer.no_checkpoints:
        # A save a crash cut off is finished or undone, and damaged checkpoints are set aside,
        # before anyone looks for the latest.
        repairs = [*checkpoint.recover_save_folder(save_folder), *checkpoint.set_aside_damaged(save_folder)] \
            if trainer.rank == 0 else []
        for line in repairs:
            trainer.log(line)
        checkpoint.barrier(group)
    latest = None if cfg.trainer.no_checkpoints else checkpoint.latest_checkpoint(save_folder)
    if latest is not None:
        check_same_model(cfg, latest)
        state = trainer.dcp_state()
        checkpoint.load_model_and_optim(latest, state, process_group=group)
        trainer.train_module.load_state_dict(state)
        train_state = checkpoint.load_train_state(latest, trainer.rank)
        if train_state is not None:
            trainer.load_state_dict(train_state)
        trainer.after_checkpoint_loaded(latest)
        ignored = f"; trainer.load_path ignored" if cfg.trainer.load_path else ""
        return f"resuming from {latest} (step {trainer.global_step}){ignored}"
    if cfg.trainer.load_path:
        source = checkpoint.resolve_load_path(cfg.trainer.load_path)
        check_same_model(cfg, source)
        state = trainer.dcp_state()
        model_only = {"model": state["model"]}
        checkpoint.load_model_and_optim(source, model_only, process_group=group)
        trainer.train_module.load_state_dict({**state, "model": model_only["model"]})
        trainer.after_checkpoint_loaded(source)
        return f"weights from trainer.load_path {source} (save folder {save_folder} has no checkpoint); step 0"
    return f"fresh init from init_seed {cfg.init_seed} (no checkpoint in {save_folder}, no trainer.load_path)"


def build_trainer(cfg: ExperimentConfig, paths, extra_callbacks: Sequence = ()) -> TrainingEnv:
    """`extra_callbacks`: Callback instances the config does not name (engine/script.py)."""
    from engine.data.eval_loader import build_eval_loaders
    from engine.data.loader import build_train_loader
    from engine.distributed.init import cpu_group, init_distributed, teardown_distributed
    from engine.train_module.pipeline import build_train_module

    dist_info = init_distributed()
    threads_note = ""
    if dist_info.device.type == "cpu" and "OMP_NUM_THREADS" not in os.environ:
        # Split this machine's cores between the local CPU ranks (torch alone would give every
        # rank all of them). On a quiet 2-core machine tiny-cpu trains 1.5x faster with 2
        # threads than with 1; on a machine other processes keep busy, extra threads mostly
        # spin-wait, so set OMP_NUM_THREADS=1 there (docs/BENCHMARKS.md has both figures).
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        local_ranks = int(os.environ.get("LOCAL_WORLD_SIZE", 1))
        threads = max(1, cores // max(local_ranks, 1))
        torch.set_num_threads(threads)
        threads_note = f" ({threads} thread{'s' if threads > 1 else ''}; set OMP_NUM_THREADS to change)"
    seed_all(cfg.init_seed)
    train_module = build_train_module(cfg, dist_info.device)
    dp_rank, dp_size = train_module.dp_rank, train_module.dp_world_size
    data_loader = build_train_loader(cfg, dp_rank=dp_rank, dp_world_size=dp_size)
    eval_data: Dict[str, Callable[[], Any]] = {}  # held-out set name -> its batches ("" = unnamed)
    lm_eval = cfg.trainer.callbacks.lm_evaluator
    if not cfg.trainer.no_evals and lm_eval.enabled:
        loaders = build_eval_loaders(cfg, dp_rank=dp_rank, dp_world_size=dp_size, max_batches=lm_eval.eval_batches)
        # iter() again each evaluation: the same batches every time
        eval_data = {name: loader.__iter__ for name, loader in loaders.items()}

    batches_per_epoch = data_loader.batches_per_epoch  # None for a mixture (no epochs)
    max_steps = steps_for(cfg, cfg.trainer.max_duration, batches_per_epoch, "trainer.max_duration")
    stop_step = max_steps
    if cfg.trainer.hard_stop is not None:
        stop_step = min(max_steps, steps_for(cfg, cfg.trainer.hard_stop, batches_per_epoch, "trainer.hard_stop"))

    trainer = Trainer(cfg=cfg, train_module=train_module, data_loader=data_loader, run_dir=paths.run_dir,
                      save_folder=paths.save_folder, callbacks=[*build_callbacks(cfg), *extra_callbacks], max_steps=max_steps,
                      stop_step=stop_step, rank=dist_info.rank, world_size=dist_info.world_size,
                      device=dist_info.device, cpu_group=cpu_group(), eval_data=eval_data or None)

    def restore() -> None:
        line = restore_weights(trainer, cfg, paths.save_folder)
        hard = f" (hard stop; schedule runs to {max_steps})" if stop_step < max_steps else ""
        trainer.log(f"weights: {line}")
        trainer.log(f"training {cfg.run_name}: steps {trainer.global_step} -> {stop_step}{hard}, "
                    f"{cfg.tokens_per_step:,} tokens/step, {cfg.model.num_params():,} params, "
                    f"{dist_info.world_size} x {dist_info.device.type}{threads_note}")

    def teardown() -> None:
        torch.cuda.synchronize() if torch.cuda.is_available() else None
        teardown_distributed()

    return TrainingEnv(trainer, dist_info.rank == 0, teardown, restore)
