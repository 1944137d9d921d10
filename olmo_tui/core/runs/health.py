"""A running run's health as its run directory tells it: stalled (engine/train/callbacks/
hang_watch.py's marker) and the per-rank Python stacks dumped at a stall."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, Optional

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
