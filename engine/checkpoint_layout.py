"""A save folder's layout, read without torch: which checkpoints are complete, the latest one,
what `trainer.load_path` points at, and the start-up recovery of a save cut off by a crash.

engine/checkpoint.py writes checkpoints (DCP, torch); this module only looks at directories and
markers, so the launcher's pre-flight (olmo_tui) and the app can use it without importing torch.

Names in a save folder:

    stepN/            committed: `.complete.json` present (the only kind resume loads)
    stepN-tmp/        being written, or cut off by a crash (complete only once its marker exists)
    stepN-replaced/   the previous stepN, moved aside while a re-save of step N is committed;
                      removed right after the new stepN is in place

    stepN-corrupt/    a committed checkpoint whose files no longer match its manifest, set aside
                      at start-up (never loaded, never pruned: kept for a look)

Re-saving step N (the final save of a resumed, finished run) never deletes the old stepN before
the new one is committed: old stepN -> stepN-replaced, stepN-tmp -> stepN, then the aside is
removed. `recover_save_folder` repairs any crash point of that sequence (see its docstring).

Integrity: each checkpoint holds `.manifest.json`, every file's size and CRC-32, written before
the marker. Each rank checksums the files it wrote itself (`.manifest-rankR.json`, read back from
the page cache right after the write, so the cost is spread over the ranks: CRC-32 runs at
~1.4 GB/s per core); rank 0 merges the parts and adds the files no rank listed (DCP's
.metadata, config.toml). `verify_checkpoint` checks sizes (a stat per file) and, when asked,
the checksums; a checkpoint without a manifest (older, or converted from HF) is trusted.
"""

from __future__ import annotations

import json
import re
import shutil
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterable, List, Optional

from engine.atomic import fsync_dir, write_json_atomic
from engine.errors import UserError

MARKER = ".complete.json"
MODEL_AND_OPTIM = "model_and_optim"
TRAIN_STATE = "train"
TMP_SUFFIX = "-tmp"
ASIDE_SUFFIX = "-replaced"
CORRUPT_SUFFIX = "-corrupt"
MANIFEST = ".manifest.json"
_MANIFEST_PART = ".manifest-rank{}.json"
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


# ---- integrity manifest ---------------------------------------------------------------------

def file_crc32(path: Path, chunk: int = 4 << 20) -> str:
    crc = 0
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            crc = zlib.crc32(block, crc)
    return f"{crc:08x}"


def _entries(root: Path, files: Iterable[Path]) -> Dict[str, list]:
    return {str(f.relative_to(root)): [f.stat().st_size, file_crc32(f)] for f in files}


def write_manifest_part(staging: Path, rank: int, files: Iterable[Path]) -> None:
    """One rank's share: size and CRC-32 of the files it wrote (fsynced: the marker follows)."""
    write_json_atomic(staging / _MANIFEST_PART.format(rank), _entries(staging, files), commit=True, indent=None)


def write_manifest(staging: Path) -> None:
    """Rank 0 at commit, before the marker: every file of the checkpoint, from the ranks' parts
    where they listed it, checksummed here otherwise; the parts are then removed."""
    parts = sorted(staging.glob(_MANIFEST_PART.format("*")))
    entries: Dict[str, list] = {}
    for part in parts:
        entries.update(json.loads(part.read_text()))
    skip = {MARKER, MANIFEST, *(part.name for part in parts)}
    rest = [f for f in staging.rglob("*") if f.is_file() and f.name not in skip
            and str(f.relative_to(staging)) not in entries and not f.name.endswith(".tmp")]
    entries.update(_entries(staging, rest))
    write_json_atomic(staging / MANIFEST, {"algorithm": "crc32", "files": dict(sorted(entries.items()))},
                      commit=True, indent=None)
    for part in parts:
        part.unlink()


def verify_checkpoint(path: Path, checksums: bool = True) -> Optional[str]:
    """What is wrong with the checkpoint at `path` against its manifest (None: nothing, or no
    manifest). Sizes always; the CRC-32 of each file too with `checksums` (reads it all)."""
    path = Path(path)
    manifest_file = path / MANIFEST
    if not manifest_file.is_file():
        return None
    try:
        files = json.loads(manifest_file.read_text())["files"]
        expected = {str(name): (int(size), str(crc)) for name, (size, crc) in files.items()}
    except (OSError, ValueError, KeyError, TypeError):
        return f"its manifest {MANIFEST} is unreadable"
    for name, (size, crc) in expected.items():
        try:
            actual = (path / name).stat().st_size
        except OSError:
            return f"{name} is missing"
        if actual != size:
            return f"{name} is {actual} bytes, {size} when saved"
    if checksums:
        for name, (_, crc) in expected.items():
            try:
                if file_crc32(path / name) != crc:
                    return f"{name} does not match its checksum"
            except OSError as exc:
                return f"{name} cannot be read: {exc.strerror or exc}"
    return None


def set_aside_damaged(folder: Path) -> List[str]:
    """Rank 0 at start-up, before the latest checkpoint is looked up: newest checkpoints that
    fail their manifest are renamed stepN-corrupt (so neither resume nor pruning takes them for
    good ones), down to the newest that passes. Returns one line per checkpoint set aside, the
    last one naming the checkpoint used instead. With no good one left, nothing is renamed and
    a UserError says so (starting from scratch over a damaged run is the user's call)."""
    damaged = []
    for info in reversed(list_checkpoints(folder)):
        problem = verify_checkpoint(info.path)
        if problem is None:
            break
        damaged.append((info, problem))
    else:
        if damaged:
            info, problem = damaged[0]
            raise UserError("trainer.save_folder", f"checkpoint {info.path} is damaged ({problem}) and no earlier "
                            "complete checkpoint passes its manifest: move the folder away to start over")
    lines = []
    for info, problem in damaged:
        aside = info.path.with_name(f"step{info.step}{CORRUPT_SUFFIX}")
        if aside.exists():
            shutil.rmtree(aside, ignore_errors=True)
        info.path.rename(aside)
        fsync_dir(info.path.parent)
        lines.append(f"checkpoint {info.path.name} is damaged ({problem}): set aside as {aside.name}")
    if lines:
        lines[-1] += f"; resuming from the previous complete checkpoint, {latest_checkpoint(folder).name}"
    return lines
