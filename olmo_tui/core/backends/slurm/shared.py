"""The shared-filesystem rule of SLURM runs: the run dir and the checkpoint folder must lie
under a folder the user marked shared (launch.slurm.shared_paths). The nodes write them and
this machine reads them; a requeued attempt, possibly on other nodes, resumes from them."""

from __future__ import annotations

import os
from pathlib import Path
from typing import List, Optional

from engine.config import ConfigError
from engine.run_dir import CHECKPOINTS_DIR

# Folders each machine fills for itself (the embedded corpus): no need to share them.
PER_MACHINE_CACHES = frozenset({"dataset.work_dir"})


def _real(path: str) -> Path:
    return Path(os.path.expandvars(os.path.expanduser(path))).resolve()


def is_under(path: Path, roots: List[Path]) -> bool:
    path = path.resolve()
    return any(path == root or root in path.parents for root in roots)


def shared_roots(cfg) -> List[Path]:
    return [_real(p) for p in cfg.launch.slurm.shared_paths]


def unshared_paths(cfg, run_dir: Path) -> List[Path]:
    """The folders of this run that are not under any shared path (empty = fine)."""
    roots = shared_roots(cfg)
    save = _real(cfg.trainer.save_folder) if cfg.trainer.save_folder else run_dir / CHECKPOINTS_DIR
    return [p for p in (run_dir, save) if not is_under(p, roots)]


def shared_paths_error(cfg, run_dir: Path) -> Optional[ConfigError]:
    """The config error a launch of `cfg` into `run_dir` is refused with (None: fine)."""
    outside = unshared_paths(cfg, run_dir)
    if not outside:
        return None
    field = "trainer.save_folder" if outside[0] != run_dir else "launch.slurm.shared_paths"
    marked = ", ".join(cfg.launch.slurm.shared_paths) or "none"
    return ConfigError.one(field, f"{outside[0]} is not under a shared path (launch.slurm.shared_paths: {marked}); "
                           "mark the filesystem the nodes share, e.g. --launch.slurm.shared_paths=[/shared]")


def files_seen_here(cfg) -> bool:
    """Whether this machine sees every file a job of `cfg` reads or writes as the nodes will:
    each path is absolute, free of ${VAR}s (the job's `setup` lines may set them) and under one
    of launch.slurm.shared_paths. Then the engine's data checks run here, before sbatch."""
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
