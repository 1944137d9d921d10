"""A run's health as its run directory tells it: stalled (engine/train/callbacks/hang_watch.py's
marker), the per-rank Python stacks dumped at a stall, and its checkpoints (step, size, age)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional

from engine.run_dir import STACKS_DIR, STALL_MARKER

from .registry import RunRecord
from .run_status import RunStatus


def stall_info(run: RunRecord) -> Optional[Dict]:
    """The stall marker of a running run (step, since, bound_s, median_step_s), else None."""
    if run.status != RunStatus.RUNNING or not run.run_dir:
        return None
    try:
        info = json.loads((Path(run.run_dir) / STALL_MARKER).read_text())
    except (OSError, ValueError):
        return None
    return info if isinstance(info, dict) else None


def stack_files(run: RunRecord) -> Dict[str, str]:
    """rank<R>.txt -> its text, for every rank that dumped its stacks (empty files left out)."""
    if not run.run_dir:
        return {}
    found = {}
    for path in sorted(Path(run.run_dir, STACKS_DIR).glob("rank*.txt"), key=lambda p: (len(p.name), p.name)):
        try:
            text = path.read_text(errors="replace")
        except OSError:
            continue
        if text.strip():
            found[path.name] = text
    return found


@dataclass
class CheckpointRow:
    step: int
    ephemeral: bool
    size_bytes: int
    saved: Optional[float]  # unix time from the commit marker (None if the marker lacks it)
    path: Path


def checkpoint_rows(folder: Path) -> List[CheckpointRow]:
    """A save folder's complete checkpoints, oldest first, with their size on disk and when
    they were committed (engine/checkpoint_layout.py decides what is complete)."""
    from engine.checkpoint_layout import list_checkpoints, read_marker

    rows = []
    for info in list_checkpoints(folder):
        size = 0
        for root, _dirs, files in os.walk(info.path):
            for name in files:
                try:
                    size += os.stat(os.path.join(root, name)).st_size
                except OSError:
                    pass
        saved = (read_marker(info.path) or {}).get("time")
        rows.append(CheckpointRow(info.step, info.ephemeral, size, saved if isinstance(saved, (int, float)) else None,
                                  info.path))
    return rows
