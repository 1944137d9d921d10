"""The launcher's pre-flight, run before a run record or run directory exists:

1. `launch_paths`: relative local paths (data, eval data, tokenizer, save folder, load path,
   task files, ...: every path field of the schema, engine/config/paths.py) become absolute
   against the user's current directory, for the backends whose jobs see this machine's files
   (local: torchrun starts in the run dir; SLURM: the job script `cd`s there). The launcher
   applies it before checking and before config.toml is written, so what is checked is what
   runs and the saved config records absolute paths. A Beaker job runs in its container, where
   this machine's current directory means nothing: a relative path there is refused.
2. `check_before_launch`: the backend's pre-flight (Backend.preflight), so a user mistake (a
   data path, an unset ${VAR}, an unwritable folder, a missing load_path, W&B without its key,
   a dirty tree for Beaker, a run dir off SLURM's shared filesystem) is one line and exit 2
   from every front end, and a notification in the app, with nothing left behind. The engine's
   torch-free checks (engine/preflight.py) run for the local backend always, for SLURM when
   every file the job reads or writes lies under launch.slurm.shared_paths with no ${VAR}
   (this machine then sees the very files the nodes will). A Beaker job's paths and
   environment are the cluster's, as are a SLURM job's node-local paths: the engine checks
   those there (its own pre-flight, before its run dir exists).
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

from engine.config import ExperimentConfig
from engine.errors import UserError

from ..backends.base import get_backend

__all__ = ["UserError", "check_before_launch", "launch_paths"]


def launch_paths(cfg: ExperimentConfig, cwd: Optional[Path] = None) -> ExperimentConfig:
    """`cfg` with its relative local paths absolute against `cwd` (default: the current
    directory), for a backend whose jobs see this machine's files. Otherwise (Beaker): UserError
    naming the first field that holds a relative path (the launch.* sections are read here, by
    the launcher, and are left alone)."""
    from engine.config.paths import absolute_paths, relative_paths

    if get_backend(cfg.launch.backend).sees_local_files:
        return absolute_paths(cfg, cwd)
    where = cfg.launch.backend.capitalize()
    for field, value in relative_paths(cfg):
        if not field.startswith("launch."):
            raise UserError(field, f"{value!r} is a relative path, but a {where} job runs in its container, "
                            "where this machine's current directory does not exist: give the path inside "
                            "the job (absolute, e.g. on a mount, or ${VAR}/...)")
    return cfg


def check_before_launch(cfg: ExperimentConfig, run_dir: Path) -> List[str]:
    """The backend's pre-flight (Backend.preflight: the engine's checks where this machine sees
    the job's files, plus the backend's own rules). Raises UserError or ConfigError for the first
    mistake found; creates nothing; returns warnings. Expects `launch_paths` to have been applied
    (relative paths would be checked against this process's directory, not the job's)."""
    return get_backend(cfg.launch.backend).preflight(cfg, run_dir)
