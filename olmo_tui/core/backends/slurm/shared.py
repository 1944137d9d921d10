"""The shared-filesystem rule of SLURM runs: the run dir and the checkpoint folder must lie
under a folder the user marked shared (launch.slurm.shared_paths). The nodes write them and
this machine reads them; a requeued attempt, possibly on other nodes, resumes from them."""

from __future__ import annotations

import os
from pathlib import Path
from typing import List

from engine.run_dir import CHECKPOINTS_DIR


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
