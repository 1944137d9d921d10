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
   notification in the app, with nothing left behind. For the local backend always; for SLURM
   when every file the job reads or writes lies under launch.slurm.shared_paths with no
   ${VAR} (this machine then sees the very files the nodes will, so a typo in a data path is
   caught now, not after hours in the queue). A Beaker job's paths and environment are the
   cluster's, as are a SLURM job's node-local paths: the engine checks those there (its own
   pre-flight, before its run dir exists).
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from engine.config import ExperimentConfig
from engine.errors import UserError

__all__ = ["UserError", "check_before_launch", "launch_paths"]

# Folders each machine fills for itself (the embedded corpus): no need to share them.
PER_MACHINE_CACHES = frozenset({"dataset.work_dir"})

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
    if cfg.launch.backend == "slurm" and not slurm_files_seen_here(cfg):
        return
    if cfg.launch.backend not in SEES_THIS_FILESYSTEM:
        return
    from engine.preflight import preflight_checks

    preflight_checks(cfg, run_dir, check_run_dir=False)  # creating the run dir is the launcher's job


def slurm_files_seen_here(cfg: ExperimentConfig) -> bool:
    """Whether this machine sees every file a SLURM job of `cfg` reads or writes as the nodes
    will: each path is absolute, free of ${VAR}s (the job's `setup` lines may set them) and
    under one of launch.slurm.shared_paths."""
    from ..backends.slurm.shared import is_under, shared_roots
    from engine.config.paths import local_paths

    roots = shared_roots(cfg)
    for field, value in local_paths(cfg):
        if field in PER_MACHINE_CACHES:
            continue
        if "$" in value or not Path(value).expanduser().is_absolute():
            return False
        if not is_under(Path(value).expanduser(), roots):
            return False
    return bool(roots)
