"""Pre-flight: every user mistake that can be found without torch and without side effects.

Run by the engine before it creates the run directory (engine/run.py) and by olmo_tui's
launcher before it creates a run record or run directory (olmo_tui/core/launch/preflight.py), so a
mistake is one line naming the setting and exit code 2, whichever door the run came through.

Checked: the run name; the run dir and save folder can be created and written (probed by a
real temp file: os.access says yes to root for almost anything); trainer.load_path holds a
complete checkpoint whose config.toml names this architecture and tokenizer; the downstream
tasks exist; an online W&B run has its key and package;
the data (engine.data.checks: paths, ${VAR}s, sizes, ids against the vocab, the tokenizer, one
global batch). Whether every tensor at load_path has the right shape needs the DCP metadata
(torch): the engine adds that check.
"""

from __future__ import annotations

import importlib.util
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from engine.config import ExperimentConfig
from engine.errors import UserError
from engine.run_dir import CHECKPOINTS_DIR

_RUN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def check_run_name(name: str) -> str:
    """Run names become directory names: no separators, no `..`, nothing hidden."""
    if not _RUN_NAME.match(name):
        raise UserError("run_name", f"{name!r} is not a valid run name: use letters, digits, '.', '_' "
                        "and '-' (starting with a letter or digit, at most 128 characters)")
    return name


def check_writable_dir(path: Path, field: str) -> None:
    """Fail now if `path` cannot become a writable directory, creating nothing.

    os.access says yes to root for almost anything, so the nearest existing ancestor is probed
    by really creating (and removing) a temp file in it.
    """
    probe_at = path
    while not probe_at.exists():
        if probe_at.parent == probe_at:
            break
        probe_at = probe_at.parent
    if not probe_at.is_dir():
        raise UserError(field, f"cannot create {path}: {probe_at} is not a directory")
    try:
        with tempfile.NamedTemporaryFile(dir=probe_at, prefix=".olmo-write-probe-"):
            pass
    except OSError as exc:
        raise UserError(field, f"cannot write to {probe_at} (needed for {path}): {exc.strerror}") from None


def check_callbacks(cfg: ExperimentConfig) -> None:
    """What an enabled callback needs from this machine (the callbacks check again)."""
    downstream = cfg.trainer.callbacks.downstream_evaluator
    if downstream.enabled and not cfg.trainer.no_evals:
        from engine.evals.mc_tasks import resolve_task

        for spec in downstream.tasks:
            resolve_task(spec)  # a built-in name or an existing, well-named .jsonl file
    wandb = cfg.trainer.callbacks.wandb
    if wandb.enabled:
        if importlib.util.find_spec("wandb") is None:
            raise UserError("trainer.callbacks.wandb.enabled", "the wandb package is not installed: "
                            "pip install 'olmo-tui[wandb]', or set trainer.callbacks.wandb.enabled = false")
        if wandb.mode == "online" and not os.environ.get("WANDB_API_KEY"):
            raise UserError("trainer.callbacks.wandb.mode", "online needs WANDB_API_KEY in the environment "
                            "(it is never read from the config); or use mode = offline")


@dataclass
class RunPaths:
    run_dir: Path
    save_folder: Path


def save_folder_of(cfg: ExperimentConfig, run_dir: Path) -> Path:
    return Path(cfg.trainer.save_folder).expanduser().absolute() if cfg.trainer.save_folder \
        else run_dir / CHECKPOINTS_DIR


def check_intact(source: Path, checksums: bool) -> None:
    """trainer.load_path's checkpoint against its manifest (engine/checkpoint_layout.py)."""
    from engine.checkpoint_layout import verify_checkpoint

    problem = verify_checkpoint(source, checksums=checksums)
    if problem is not None:
        raise UserError("trainer.load_path", f"the checkpoint at {source} is damaged: {problem}")


def preflight_checks(cfg: ExperimentConfig, run_dir: Path, *, check_run_dir: bool = True) -> RunPaths:
    """Raise UserError (one line, naming the setting) for the first mistake found; creates
    nothing. Torch-free: olmo_tui.core runs it before a launch, with check_run_dir=False: the
    launcher creates the run dir itself (a failure there is a launch error, exit 3), so only a
    save folder outside it is checked here."""
    from engine.checkpoint_layout import latest_checkpoint, resolve_load_path
    from engine.data.checks import check_data

    check_run_name(cfg.run_name)
    save_folder = save_folder_of(cfg, run_dir)
    if check_run_dir:
        check_writable_dir(run_dir, "--run-dir")
    if not cfg.trainer.no_checkpoints and (check_run_dir or cfg.trainer.save_folder):
        check_writable_dir(save_folder, "trainer.save_folder")
    if cfg.trainer.load_path and latest_checkpoint(save_folder) is None:
        from engine.hf.checkpoint_config import check_saved_config_fits

        source = resolve_load_path(cfg.trainer.load_path)
        check_intact(source, checksums=False)  # sizes here; the engine's rank 0 reads the checksums
        check_saved_config_fits(cfg, source)  # architecture, tokenizer
    check_callbacks(cfg)
    check_data(cfg)
    return RunPaths(run_dir, save_folder)
