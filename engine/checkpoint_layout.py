"""A save folder's layout, read without torch: which checkpoints are complete, the latest one,
what `trainer.load_path` points at, and the start-up recovery of a save cut off by a crash.

engine/checkpoint.py writes checkpoints (DCP, torch); this module only looks at directories and
markers, so the launcher's pre-flight (olmo_tui) and the app can use it without importing torch.

Names in a save folder:

    stepN/            committed: `.complete.json` present (the only kind resume loads)
    stepN-tmp/        being written, or cut off by a crash (complete only once its marker exists)
    stepN-replaced/   the previous stepN, moved aside while a re-save of step N is committed;
                      removed right after the new stepN is in place

Re-saving step N (the final save of a resumed, finished run) never deletes the old stepN before
the new one is committed: old stepN -> stepN-replaced, stepN-tmp -> stepN, then the aside is
removed. `recover_save_folder` repairs any crash point of that sequence (see its docstring).
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional

from engine.atomic import fsync_dir
from engine.errors import UserError

MARKER = ".complete.json"
MODEL_AND_OPTIM = "model_and_optim"
TRAIN_STATE = "train"
TMP_SUFFIX = "-tmp"
ASIDE_SUFFIX = "-replaced"
STEP_DIR = re.compile(r"^step(\d+)$")
_STAGED_DIR = re.compile(r"^step(\d+)(-tmp|-replaced)$")


@dataclass(frozen=True)
class CheckpointInfo:
    path: Path
    step: int
    ephemeral: bool


def read_marker(path: Path) -> Optional[dict]:
    try:
        marker = json.loads((path / MARKER).read_text())
    except (OSError, ValueError):
        return None
    return marker if isinstance(marker, dict) else None


def is_complete(path: Path) -> bool:
    """A committed checkpoint: marker present and readable, model shards' metadata present."""
    return read_marker(path) is not None and (path / MODEL_AND_OPTIM / ".metadata").is_file()


def list_checkpoints(folder: Path) -> List[CheckpointInfo]:
    """Complete checkpoints in `folder`, oldest first. Temp and unmarked dirs are skipped; an
    aside (`stepN-replaced`) stands in for a stepN that a crash left missing."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    found = {}
    for child in folder.iterdir():
        match = STEP_DIR.match(child.name)
        if match and child.is_dir() and is_complete(child):
            found[int(match.group(1))] = child
    for child in folder.iterdir():
        match = _STAGED_DIR.match(child.name)
        if match and match.group(2) == ASIDE_SUFFIX and int(match.group(1)) not in found and is_complete(child):
            found[int(match.group(1))] = child
    return [CheckpointInfo(path, step, bool((read_marker(path) or {}).get("ephemeral", False)))
            for step, path in sorted(found.items())]


def latest_checkpoint(folder: Path) -> Optional[Path]:
    checkpoints = list_checkpoints(folder)
    return checkpoints[-1].path if checkpoints else None


def resolve_load_path(path: str | Path, field: str = "trainer.load_path") -> Path:
    """A `stepN` dir, a folder of checkpoints (its latest is used) or a bare DCP directory."""
    path = Path(path).expanduser()
    if is_complete(path):
        return path
    if (path / ".metadata").is_file():  # a model-only DCP dir (e.g. converted from HF)
        return path
    latest = latest_checkpoint(path)
    if latest is not None:
        return latest
    raise UserError(field, f"no complete checkpoint at {path} (expected a stepN directory with "
                    f"{MARKER}, a folder of them, or a DCP directory with .metadata)")


def checkpoint_world_size(path: Path) -> Optional[int]:
    return (read_marker(path) or {}).get("world_size")


def remove_checkpoint(path: Path) -> None:
    """Marker first, so a removal cut short leaves an incomplete (ignored) directory."""
    (path / MARKER).unlink(missing_ok=True)
    shutil.rmtree(path, ignore_errors=True)


def recover_save_folder(folder: Path) -> List[str]:
    """Rank 0 at start-up, before anything is loaded: finish or undo what a crash interrupted.
    Returns one line per repair (for the log).

    For each step N with leftovers, in this order:
    - `stepN` complete: the leftovers are stale (a finished commit's aside, an older staging);
    - else `stepN-tmp` complete (crashed after its marker, before its rename): commit it;
    - else `stepN-replaced` complete (crashed after moving the old one aside): put it back;
    - whatever is left (an unfinished `-tmp`, a broken aside) can never complete: removed.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    steps = sorted({int(m.group(1)) for child in folder.iterdir() if (m := _STAGED_DIR.match(child.name))})
    repairs = []
    for step in steps:
        final = folder / f"step{step}"
        staging, aside = folder / f"step{step}{TMP_SUFFIX}", folder / f"step{step}{ASIDE_SUFFIX}"
        if not is_complete(final):
            for candidate, verb in ((staging, "committed the finished save"), (aside, "restored")):
                if candidate.is_dir() and is_complete(candidate):
                    if final.exists():
                        remove_checkpoint(final)  # an incomplete stepN (marker already gone)
                    candidate.rename(final)
                    fsync_dir(folder)
                    repairs.append(f"checkpoint step{step}: {verb} {candidate.name} as {final.name}")
                    break
        for leftover in (staging, aside):
            if leftover.exists():
                remove_checkpoint(leftover)
                repairs.append(f"checkpoint step{step}: removed the leftover {leftover.name}")
    return repairs
