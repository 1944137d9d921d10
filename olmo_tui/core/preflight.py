"""The launcher's pre-flight, run before a run record or run directory exists:

1. `launch_paths`: relative local paths (data, eval data, tokenizer, save folder, load path,
   task files, ...: every path field of the schema, engine/config/paths.py) become absolute
   against the user's current directory, for the backends whose jobs see this machine's files
   (local: torchrun starts in the run dir; SLURM: the job script `cd`s there). The launcher
   applies it before checking and before config.toml is written, so what is checked is what
   runs and the saved config records absolute paths. A Beaker job runs in its container, where
   this machine's current directory means nothing: a relative path there is refused.
2. `check_before_launch`: the engine's torch-free checks (engine/preflight.py), so a user
   mistake (a data path, an unset ${VAR}, an unwritable folder, a missing load_path, W&B
   without its key) is one line and exit 2 from `olmo-tui --preset ...` or `relaunch`, and a
   notification in the app, with nothing left behind. Only for the local backend: a Beaker
   job's paths and environment are the cluster's, a SLURM job's the nodes'; the engine checks
   them there (its own pre-flight, before its run dir exists).
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from engine.config import ExperimentConfig
from engine.errors import UserError

__all__ = ["UserError", "check_before_launch", "launch_paths"]

# Backends whose jobs read and write this machine's file system (SLURM: a shared one).
SEES_THIS_FILESYSTEM = frozenset({"local", "slurm"})


def launch_paths(cfg: ExperimentConfig, cwd: Optional[Path] = None) -> ExperimentConfig:
    """`cfg` with its relative local paths absolute against `cwd` (default: the current
    directory). Beaker: UserError naming the first field that holds a relative path (the
    launch.* sections are read here, by the launcher, and are left alone)."""
    from engine.config.paths import absolute_paths, relative_paths

    if cfg.launch.backend in SEES_THIS_FILESYSTEM:
        return absolute_paths(cfg, cwd)
    where = cfg.launch.backend.capitalize()
    for field, value in relative_paths(cfg):
        if not field.startswith("launch."):
            raise UserError(field, f"{value!r} is a relative path, but a {where} job runs in its container, "
                            "where this machine's current directory does not exist: give the path inside "
                            "the job (absolute, e.g. on a mount, or ${VAR}/...)")
    return cfg


def check_before_launch(cfg: ExperimentConfig, run_dir: Path) -> None:
    """Raise engine.errors.UserError for the first mistake found; creates nothing. Expects
    `launch_paths` to have been applied (relative paths would be checked against this
    process's directory, not the job's)."""
    if cfg.launch.backend != "local":
        return
    from engine.preflight import preflight_checks

    preflight_checks(cfg, run_dir, check_run_dir=False)  # creating the run dir is the launcher's job
