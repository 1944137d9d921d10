"""Distributed checkpoints that are either complete or ignored.

Layout of a save folder (`trainer.save_folder`, by default `<run dir>/checkpoints`):

    step100/                      a committed checkpoint (the only kind resume looks at)
      model_and_optim/            torch.distributed.checkpoint (DCP): .metadata + *.distcp shards
      train/rank0.pt ...          the trainer's state per rank (step, tokens, data position, RNG,
                                  callback state), torch.save of plain values and tensors
      config.toml                 the resolved config (written by the config_saver callback)
      .complete.json              commit marker: {"step", "ephemeral", "world_size", "time"}
    step125-tmp/                  a save in progress (or one cut off by a crash): never loaded

Why both a temp dir and a marker: every rank writes its shards into `stepN-tmp/`; only when all
of them are done does rank 0 write `.complete.json` (fsynced) and rename the directory to
`stepN` in one atomic `os.rename` on the same filesystem. A crash at any point leaves either a
`-tmp` directory or nothing; a `stepN` directory without the marker (copied by hand, or cut off
on a filesystem without atomic renames) is skipped as well. Removal deletes the marker first,
so a half-deleted checkpoint is never taken for complete either.

Retention (rank 0, after each commit): the newest `keep` permanent checkpoints stay (0 = all);
of the ephemeral ones only the newest stays, and only while it is the newest checkpoint.

Async save (GPU): `dcp.async_save` copies the state to host memory during the call and writes
the shards in a background thread while training continues. The commit (marker + rename) needs
every rank to be finished, so it happens at a point all ranks reach together: `finalize()`,
which the checkpointer callback calls at the next metrics collection, the next save and the end
of training. A crash before that loses only the uncommitted save.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
import warnings
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

import torch
import torch.distributed as dist
import torch.distributed.checkpoint as dcp

from engine.errors import UserError

MARKER = ".complete.json"
MODEL_AND_OPTIM = "model_and_optim"
TRAIN_STATE = "train"
_STEP_DIR = re.compile(r"^step(\d+)$")
_TMP_SUFFIX = "-tmp"



@contextmanager
def _quiet_dcp():
    """DCP warns on every call in a single process that it assumes no process group: expected."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="torch.distributed is disabled, unavailable or uninitialized")
        yield


@dataclass(frozen=True)
class CheckpointInfo:
    path: Path
    step: int
    ephemeral: bool


def _read_marker(path: Path) -> Optional[dict]:
    try:
        marker = json.loads((path / MARKER).read_text())
    except (OSError, ValueError):
        return None
    return marker if isinstance(marker, dict) else None


def is_complete(path: Path) -> bool:
    """A committed checkpoint: marker present and readable, model shards' metadata present."""
    return _read_marker(path) is not None and (path / MODEL_AND_OPTIM / ".metadata").is_file()


def list_checkpoints(folder: Path) -> List[CheckpointInfo]:
    """Complete checkpoints in `folder`, oldest first. Temp and unmarked dirs are skipped."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    found = []
    for child in folder.iterdir():
        match = _STEP_DIR.match(child.name)
        if not match or not child.is_dir() or not is_complete(child):
            continue
        marker = _read_marker(child) or {}
        found.append(CheckpointInfo(child, int(match.group(1)), bool(marker.get("ephemeral", False))))
    return sorted(found, key=lambda info: info.step)


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


def _dcp_dir(path: Path) -> Path:
    return path / MODEL_AND_OPTIM if (path / MODEL_AND_OPTIM).is_dir() else path


def load_model_and_optim(path: Path, state: Dict[str, Any], process_group=None) -> None:
    """Fill `state` in place from the checkpoint's DCP shards (keys absent from `state` are not
    read, so {"model": ...} alone loads weights only)."""
    with _quiet_dcp():
        dcp.load(state, checkpoint_id=str(_dcp_dir(path)), process_group=process_group)


def load_train_state(path: Path, rank: int) -> Optional[Dict[str, Any]]:
    """This rank's trainer state, falling back to rank 0's when the world size grew; None for a
    model-only checkpoint."""
    for candidate in (path / TRAIN_STATE / f"rank{rank}.pt", path / TRAIN_STATE / "rank0.pt"):
        if candidate.is_file():
            return torch.load(candidate, map_location="cpu", weights_only=True)
    return None


def checkpoint_world_size(path: Path) -> Optional[int]:
    marker = _read_marker(path) or {}
    return marker.get("world_size")


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # some filesystems refuse fsync on directories; the rename still happened
        pass
    finally:
        os.close(fd)


def remove_checkpoint(path: Path) -> None:
    """Marker first, so a removal cut short leaves an incomplete (ignored) directory."""
    (path / MARKER).unlink(missing_ok=True)
    shutil.rmtree(path, ignore_errors=True)


def _barrier() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


@dataclass
class _PendingSave:
    step: int
    ephemeral: bool
    staging: Path
    future: Optional[Future]
    on_staged: Optional[Callable[[Path], None]]


class Checkpointer:
    """Saves to and prunes one save folder. Every rank calls save()/finalize() at the same step."""

    def __init__(self, folder: Path, *, rank: int = 0, world_size: int = 1, keep: int = 0,
                 async_save: bool = False, process_group=None):
        self.folder = Path(folder)
        self.rank = rank
        self.world_size = world_size
        self.keep = keep
        self.async_save = async_save
        self.process_group = process_group
        self._pending: Optional[_PendingSave] = None
        self.last_save_duration_s: Optional[float] = None

    @property
    def pending_step(self) -> Optional[int]:
        return self._pending.step if self._pending else None

    def remove_stale_staging(self) -> None:
        """Rank 0 at start-up: temp dirs left by a crashed save can never be completed."""
        if self.rank != 0 or not self.folder.is_dir():
            return
        for child in self.folder.iterdir():
            if child.is_dir() and child.name.endswith(_TMP_SUFFIX):
                shutil.rmtree(child, ignore_errors=True)

    def save(self, step: int, dcp_state: Dict[str, Any], train_state: Dict[str, Any], *,
             ephemeral: bool = False, on_staged: Optional[Callable[[Path], None]] = None) -> Optional[Path]:
        """Write a checkpoint for `step`. Returns the committed path, or None while an async save
        is still being written (it commits at the next finalize())."""
        self.finalize()
        started = time.perf_counter()
        staging = self.folder / f"step{step}{_TMP_SUFFIX}"
        if self.rank == 0:
            shutil.rmtree(staging, ignore_errors=True)
            (staging / TRAIN_STATE).mkdir(parents=True)
        _barrier()
        torch.save(train_state, staging / TRAIN_STATE / f"rank{self.rank}.pt")
        target = str(staging / MODEL_AND_OPTIM)
        future = None
        with _quiet_dcp():
            if self.async_save:
                # The default stager copies to host memory before returning (training may then
                # change the weights); only the file writes run in the background.
                future = dcp.async_save(dcp_state, checkpoint_id=target, process_group=self.process_group)
                future = getattr(future, "upload_completion", future)  # AsyncSaveResponse (newer torch)
            else:
                dcp.save(dcp_state, checkpoint_id=target, process_group=self.process_group)
        self._pending = _PendingSave(step, ephemeral, staging, future, on_staged)
        self.last_save_duration_s = time.perf_counter() - started
        if future is None:
            return self.finalize()
        return None

    def finalize(self) -> Optional[Path]:
        """Wait for an in-flight save and commit it (all ranks). Returns its path, if any."""
        pending, self._pending = self._pending, None
        if pending is None:
            return None
        if pending.future is not None:
            pending.future.result()  # re-raises a failed background write
        _barrier()
        final = self.folder / f"step{pending.step}"
        if self.rank == 0:
            if pending.on_staged is not None:
                pending.on_staged(pending.staging)
            marker = {"step": pending.step, "ephemeral": pending.ephemeral,
                      "world_size": self.world_size, "time": time.time()}
            with open(pending.staging / MARKER, "w") as handle:
                json.dump(marker, handle)
                handle.flush()
                os.fsync(handle.fileno())
            if final.exists():  # re-saving a step (e.g. the final save of a resumed, finished run)
                remove_checkpoint(final)
            os.rename(pending.staging, final)
            _fsync_dir(self.folder)
            self._prune(keep_ephemeral=final if pending.ephemeral else None)
        _barrier()
        return final

    def _prune(self, keep_ephemeral: Optional[Path]) -> None:
        checkpoints = list_checkpoints(self.folder)
        for info in checkpoints:
            if info.ephemeral and info.path != keep_ephemeral:
                remove_checkpoint(info.path)
        permanent = [info for info in checkpoints if not info.ephemeral]
        if self.keep > 0:
            for info in permanent[:-self.keep]:
                remove_checkpoint(info.path)
