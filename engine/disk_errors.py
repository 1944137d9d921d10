"""A write that failed because of the storage (disk full, over quota, read-only, file too large,
I/O error): found wherever it hides in an exception chain and named in one line, with the path,
the errno and what to do.

Why hunt for it: torch.save reports a failed write as `RuntimeError: ... unexpected pos` (the
OSError is only its __context__), and DCP wraps each rank's failure in a CheckpointException
(a BaseException whose `failures` hold the real ones). Printed as is, a full disk was dozens of
traceback lines with the errno buried in them.

Torch-free: engine/run.py reports these, olmo_tui's wrapper uses the errno table too.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Optional, Union

from engine.errors import one_line

# The errnos that are the storage's fault, and what the user can do about each.
ADVICE = {
    errno.ENOSPC: "free space on that filesystem, or move the run dir / trainer.save_folder to another one",
    errno.EDQUOT: "the disk quota is used up: free space, or move the run dir / trainer.save_folder",
    errno.EROFS: "the filesystem is mounted read-only: move the run dir / trainer.save_folder to a writable one",
    errno.EFBIG: "a file size limit was reached (`ulimit -f`, or the filesystem's largest file)",
    errno.EIO: "the storage reported an I/O error: check the disk or the network filesystem",
}


def storage_os_error(exc: Optional[BaseException]) -> Optional[OSError]:
    """The first OSError with one of ADVICE's errnos in `exc`, its causes and contexts, and the
    per-rank failures of a DCP CheckpointException; None if the failure is something else."""
    seen, todo = set(), [exc]
    while todo:
        current = todo.pop(0)
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno in ADVICE:
            return current
        todo += [current.__cause__, current.__context__]
        failures = getattr(current, "failures", None)  # torch's CheckpointException
        if isinstance(failures, dict):
            todo += [f[0] if isinstance(f, tuple) else f for f in failures.values()]
    return None


class StorageError(Exception):
    """Writing `what` at `path` failed for a reason of the storage's (`os_error`)."""

    def __init__(self, what: str, path: Union[str, os.PathLike], os_error: OSError, note: str = ""):
        super().__init__(what, str(path), os_error.errno)
        self.what, self.path, self.os_error, self.note = what, Path(path), os_error, note

    def __str__(self) -> str:
        code = self.os_error.errno
        name = errno.errorcode.get(code, str(code))
        reason = self.os_error.strerror or os.strerror(code)
        what = f"{self.what} " if self.what else ""
        return one_line(f"cannot write {what}{self.path}: [Errno {code} {name}] {reason}; "
                        f"{ADVICE[code]}{self.note}")


def describe_storage_failure(exc: BaseException, where: Union[str, os.PathLike]) -> Optional[str]:
    """One line for a failure caused by the storage (None for anything else). A StorageError
    says what it was writing; a bare OSError is named by its file, else by `where`."""
    seen, current = set(), exc
    while current is not None and id(current) not in seen:  # a StorageError anywhere in the chain
        if isinstance(current, StorageError):
            return str(current)
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    os_error = storage_os_error(exc)
    if os_error is None:
        return None
    return str(StorageError("under" if os_error.filename is None else "", os_error.filename or where, os_error))
