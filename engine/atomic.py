"""Atomic file writes: a reader sees the old file or the whole new one, never half of either.

The one way the engine and olmo_tui.core write a file that someone else may read while it is
written (config.toml, exit.json, launch.json, presets, token files, profiler traces, ...):

- the data goes to a temp file in the same directory (os.replace is atomic only within one
  filesystem) under a unique name from tempfile, so two writers of the same target never
  share (and truncate) one temp file: the last replace wins and each result is whole;
- the temp file is flushed and fsynced before the replace, so a crash right after the rename
  cannot leave a renamed but empty file;
- with `commit=True` the directory is fsynced after the replace too, which makes the rename
  itself durable: use it where the file is a commit point (a marker, exit.json);
- any failure removes the temp file and leaves the target untouched.

The temp file gets the permissions a plain open() would give (0666 less the umask) instead of
mkstemp's 0600, so replacing a file does not silently make it private.

Torch-free and dependency-free: olmo_tui.core imports it too.
"""

from __future__ import annotations

import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, Iterator, Optional, Union

_umask: Optional[int] = None


def _current_umask() -> int:
    """The process umask, read without changing it (os.umask would, racing other threads)."""
    global _umask
    if _umask is None:
        try:
            with open("/proc/self/status") as status:
                line = next(line for line in status if line.startswith("Umask:"))
            _umask = int(line.split()[1], 8)
        except (OSError, StopIteration, ValueError):  # not Linux: the usual default
            _umask = 0o022
    return _umask


def fsync_dir(path: Union[str, os.PathLike]) -> None:
    """Make renames and creations inside `path` durable (best effort: some filesystems refuse)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextmanager
def _temp_beside(path: Union[str, os.PathLike], commit: bool) -> Iterator[tuple]:
    """(fd, temp name) of a new file beside `path`, with open()'s permissions. The caller writes
    and fsyncs it; on a clean exit it replaces `path` (and, with `commit`, the rename is made
    durable); on an exception it is removed and `path` is left as it was."""
    target = Path(path)
    fd, temp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_current_umask())
        yield fd, temp_name
        os.replace(temp_name, target)
    except BaseException:
        try:
            os.unlink(temp_name)
        except OSError:
            pass
        raise
    if commit:
        fsync_dir(target.parent)


@contextmanager
def atomic_file(path: Union[str, os.PathLike], mode: str = "w", *, commit: bool = False,
                encoding: Optional[str] = None) -> Iterator[IO[Any]]:
    """Yield a file to write `path`'s new content into; on a clean exit it replaces `path`.

    `mode` is "w" (text, utf-8 unless `encoding`) or "wb". An exception inside the block
    removes the temp file and re-raises; `path` is then unchanged.
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"mode must be 'w' or 'wb', not {mode!r}")
    with _temp_beside(path, commit) as (fd, _):
        text = mode == "w"
        with os.fdopen(fd, mode, encoding=(encoding or "utf-8") if text else None) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())


@contextmanager
def atomic_path(path: Union[str, os.PathLike], *, commit: bool = False) -> Iterator[Path]:
    """For writers that want a file name (a profiler's export, a library's save(path)): yield a
    unique temp path beside `path`; on a clean exit it is fsynced and replaces `path`."""
    with _temp_beside(path, commit) as (fd, temp_name):
        os.close(fd)
        yield Path(temp_name)
        fd = os.open(temp_name, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def write_atomic(path: Union[str, os.PathLike], data: Union[str, bytes], *, commit: bool = False) -> None:
    """Replace `path` with `data` (str: utf-8 text, bytes: as is)."""
    with atomic_file(path, "wb" if isinstance(data, bytes) else "w", commit=commit) as handle:
        handle.write(data)


def write_json_atomic(path: Union[str, os.PathLike], data: Any, *, commit: bool = False,
                      indent: Optional[int] = 2) -> None:
    """Replace `path` with `data` as JSON (and a trailing newline)."""
    write_atomic(path, json.dumps(data, indent=indent) + "\n", commit=commit)
