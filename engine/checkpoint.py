"""Distributed checkpoints that are either complete or ignored.

Layout of a save folder (`trainer.save_folder`, by default `<run dir>/checkpoints`):

    step100/                      a committed checkpoint (the only kind resume looks at)
      model_and_optim/            torch.distributed.checkpoint (DCP): .metadata + *.distcp shards
      train/rank0.pt ...          the trainer's state per rank (step, tokens, data position, RNG,
                                  callback state), torch.save of plain values and tensors
      config.toml                 the resolved config (written by the config_saver callback)
      .manifest.json              every file's size and CRC-32, checked before a resume
      .complete.json              commit marker: {"step", "ephemeral", "world_size", "time"}
    step125-tmp/                  a save in progress (or one cut off by a crash): never loaded

Why both a temp dir and a marker: every rank writes its shards (and its fsynced train state)
into `stepN-tmp/`; only when all of them are done does rank 0 write `.complete.json` (fsynced)
and rename the directory to `stepN` in one atomic `os.rename` on the same filesystem. A crash at
any point leaves either a `-tmp` directory or nothing; a `stepN` directory without the marker
(copied by hand, or cut off on a filesystem without atomic renames) is skipped as well. Removal
deletes the marker first, so a half-deleted checkpoint is never taken for complete either.
Re-saving an existing step moves the old one aside (`stepN-replaced`) and removes it only after
the new one is committed; the layout and the start-up recovery are engine/checkpoint_layout.py
(torch-free, so the launcher's pre-flight reads save folders too).

A save that fails removes its `stepN-tmp` (the previous checkpoint stays as it was); a failure
of the storage (disk full, read-only) is raised as engine.disk_errors.StorageError, one line.

Retention (rank 0, after each commit): the newest `keep` permanent checkpoints stay (0 = all),
and so does every permanent one whose step is a multiple of `keep_every` (milestones); of the
ephemeral ones only the newest stays, and only while it is the newest checkpoint. The newest
checkpoint, the one a resume takes, is never removed.

Async save (GPU): `dcp.async_save` copies the state to host memory during the call and writes
the shards in a background thread while training continues. The commit (marker + rename) needs
every rank to be finished, so it happens at a point all ranks reach together: `finalize()`,
which the checkpointer callback calls at the next metrics collection, the next save and the end
of training. A crash before that loses only the uncommitted save.
"""

from __future__ import annotations

import os
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

from engine.atomic import fsync_dir, write_json_atomic
from engine.checkpoint_layout import (  # noqa: F401  (re-exported: the save folder's layout)
    ASIDE_SUFFIX, MANIFEST, MARKER, MODEL_AND_OPTIM, TMP_SUFFIX, TRAIN_STATE, CheckpointInfo, checkpoint_world_size,
    is_complete, latest_checkpoint, list_checkpoints, recover_save_folder, remove_checkpoint, resolve_load_path,
    set_aside_damaged, verify_checkpoint, write_manifest, write_manifest_part,
)
from engine.disk_errors import StorageError, storage_os_error

@contextmanager
def _quiet_dcp():
    """DCP warns on every call in a single process that it assumes no process group: expected."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="torch.distributed is disabled, unavailable or uninitialized")
        yield


class _Writer(dcp.FileSystemWriter):
    """DCP's file writer, except that a write the storage refused (disk full, ...) fails with
    that OSError itself. DCP gathers each rank's failure by pickling it, which keeps an
    exception but drops its __context__, and torch.save reports a failed write as
    `RuntimeError: unexpected pos` with the OSError only in that context."""

    def write_data(self, plan, planner):
        try:
            return super().write_data(plan, planner)
        except Exception as exc:
            os_error = storage_os_error(exc)
            if os_error is None:
                raise
            raise OSError(os_error.errno, os_error.strerror, os_error.filename or str(self.path)) from exc


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


def barrier(group) -> None:
    """Wait for every rank of the checkpoint's own process group (the default group if None)."""
    if dist.is_available() and dist.is_initialized():
        dist.barrier(group=group)


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
                 async_save: bool = False, process_group=None, keep_every: Optional[int] = None):
        self.folder = Path(folder)
        self.rank = rank
        self.world_size = world_size
        self.keep = keep
        self.keep_every = keep_every
        self.async_save = async_save
        self.process_group = process_group
        self._pending: Optional[_PendingSave] = None
        self.last_save_duration_s: Optional[float] = None

    @property
    def pending_step(self) -> Optional[int]:
        return self._pending.step if self._pending else None

    def remove_stale_staging(self) -> List[str]:
        """Rank 0 at start-up: finish or undo a save a crash cut off (checkpoint_layout's
        recover_save_folder); returns its repair lines. Idempotent."""
        if self.rank != 0:
            return []
        return recover_save_folder(self.folder)

    def save(self, step: int, dcp_state: Dict[str, Any], train_state: Dict[str, Any], *,
             ephemeral: bool = False, on_staged: Optional[Callable[[Path], None]] = None) -> Optional[Path]:
        """Write a checkpoint for `step`. Returns the committed path, or None while an async save
        is still being written (it commits at the next finalize())."""
        self.finalize()
        started = time.perf_counter()
        staging = self.folder / f"step{step}{TMP_SUFFIX}"
        with self._failure_named(step, staging):
            if self.rank == 0:
                shutil.rmtree(staging, ignore_errors=True)
                (staging / TRAIN_STATE).mkdir(parents=True)
            barrier(self.process_group)
            with open(staging / TRAIN_STATE / f"rank{self.rank}.pt", "wb") as handle:
                torch.save(train_state, handle)
                handle.flush()
                os.fsync(handle.fileno())  # on disk before rank 0's marker says the checkpoint is whole
            target = str(staging / MODEL_AND_OPTIM)
            future = None
            with _quiet_dcp():
                if self.async_save:
                    # The default stager copies to host memory before returning (training may then
                    # change the weights); only the file writes run in the background.
                    future = dcp.async_save(dcp_state, storage_writer=_Writer(target),
                                            process_group=self.process_group)
                    future = getattr(future, "upload_completion", future)  # AsyncSaveResponse (newer torch)
                else:
                    dcp.save(dcp_state, storage_writer=_Writer(target), process_group=self.process_group)
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
        final = self.folder / f"step{pending.step}"
        with self._failure_named(pending.step, pending.staging):
            if pending.future is not None:
                pending.future.result()  # re-raises a failed background write
            write_manifest_part(pending.staging, self.rank, self._own_files(pending.staging))
            barrier(self.process_group)
            if self.rank == 0:
                if pending.on_staged is not None:
                    pending.on_staged(pending.staging)
                write_manifest(pending.staging)
                marker = {"step": pending.step, "ephemeral": pending.ephemeral,
                          "world_size": self.world_size, "time": time.time()}
                fsync_dir(pending.staging / MODEL_AND_OPTIM)
                fsync_dir(pending.staging / TRAIN_STATE)
                write_json_atomic(pending.staging / MARKER, marker, commit=True, indent=None)
                self._commit(pending.staging, final)
                self._prune(keep_ephemeral=final if pending.ephemeral else None)
        barrier(self.process_group)
        return final

    def _own_files(self, staging: Path) -> List[Path]:
        """The files this rank wrote: its train state and DCP's `__<group rank>_*.distcp` shards."""
        group_rank = dist.get_rank(self.process_group) if dist.is_available() and dist.is_initialized() else 0
        return [staging / TRAIN_STATE / f"rank{self.rank}.pt",
                *sorted((staging / MODEL_AND_OPTIM).glob(f"__{group_rank}_*.distcp"))]

    @contextmanager
    def _failure_named(self, step: int, staging: Path):
        """A save that fails leaves no partial `stepN-tmp` (every rank removes it; the previous
        checkpoint is untouched; one whose marker is written is whole, and start-up recovery
        commits it), and a failure of the storage (disk full, read-only, ...) becomes a
        StorageError: one line with the path, the errno and the last good step."""
        try:
            yield
        except BaseException as exc:
            if not is_complete(staging):
                shutil.rmtree(staging, ignore_errors=True)
            os_error = storage_os_error(exc)
            if os_error is None:
                raise
            previous = latest_checkpoint(self.folder)
            note = (f" (the previous checkpoint, {previous.name}, is intact: rerun the same command to resume "
                    "from it)" if previous else " (no earlier checkpoint)")
            raise StorageError(f"checkpoint step{step} to", staging, os_error, note) from exc

    def _commit(self, staging: Path, final: Path) -> None:
        """staging -> final. Re-saving a step (the final save of a resumed, finished run) moves
        the old one aside first and removes it only once the new one is in place: a crash at
        any point leaves a complete stepN, stepN-tmp or stepN-replaced (recover_save_folder)."""
        aside = final.with_name(final.name + ASIDE_SUFFIX)
        if final.exists():
            if aside.exists():
                remove_checkpoint(aside)
            os.rename(final, aside)
            fsync_dir(self.folder)
        os.rename(staging, final)
        fsync_dir(self.folder)
        if aside.exists():
            remove_checkpoint(aside)

    def _prune(self, keep_ephemeral: Optional[Path]) -> None:
        checkpoints = list_checkpoints(self.folder)
        for info in checkpoints:
            if info.ephemeral and info.path != keep_ephemeral:
                remove_checkpoint(info.path)
        permanent = [info for info in checkpoints if not info.ephemeral]
        if self.keep > 0:
            for info in permanent[:-self.keep]:
                if not (self.keep_every and info.step % self.keep_every == 0):
                    remove_checkpoint(info.path)
