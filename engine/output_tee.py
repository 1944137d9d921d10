"""Rank 0's terminal output, copied into <run dir>/stdout.log for a run olmo-tui did not launch.

olmo-tui's launcher sends the job's output to stdout.log itself (local_wrapper.py); a run started
as `olmo-train NAME` has nobody doing that, so `olmo-tui logs NAME` and the monitor's log panel
would have nothing to show. `OutputTee` sits under file descriptors 1 and 2, so it sees what the
process prints at every level (print, warnings, logging handlers bound to the original streams,
C++ messages from torch): each descriptor becomes a pipe, and one thread copies what arrives to
the original stream (stdout stays stdout, stderr stays stderr, the terminal sees what it always
saw) and appends it to the log. The log is opened for appending: a rerun of the same NAME (a
resume) continues it, as the launcher's wrapper does. Only what the process prints reaches it
(the engine prints no secret: keys are read from the environment and never echoed), and only
what reaches the descriptors: a caller that swapped sys.stdout for an in-memory stream (pytest's
capture of an in-process run, a notebook) keeps those prints to itself.

close() flushes Python's streams, puts the original descriptors back (which closes the pipes'
write ends) and waits for the thread to drain what is left. The thread owns its descriptors and
the log file and closes them when its pipes end, so a child still holding a write end (a forked
data-loader worker) cannot make it write into a descriptor that was reused meanwhile. Torch-free.
"""

from __future__ import annotations

import os
import selectors
import sys
import threading
from pathlib import Path
from typing import Dict, Optional

from engine.run_dir import LOG_FILE

DRAIN_TIMEOUT_S = 5.0  # close() waits this long for output still in the pipes


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


class OutputTee:
    """Copy everything written to fds 1 and 2 into `log_path` as well, until close()."""

    def __init__(self, log_path: Path):
        self.log_path = log_path
        self._closed = False
        self._restored = False
        self._restore_lock = threading.Lock()
        self._log = open(log_path, "ab", buffering=0)
        self._originals: Dict[int, int] = {}  # 1 / 2 -> a duplicate of what they were
        self._selector = selectors.DefaultSelector()
        pipes = []
        try:  # everything that can fail comes before the first descriptor is swapped
            for fd in (1, 2):
                self._originals[fd] = os.dup(fd)
                pipes.append(os.pipe())
        except OSError:
            for opened in [*self._originals.values(), *(end for pipe in pipes for end in pipe)]:
                os.close(opened)
            self._log.close()
            raise
        self._flush_python_streams()
        for (fd, original), (read_end, write_end) in zip(self._originals.items(), pipes, strict=True):
            os.dup2(write_end, fd)
            os.close(write_end)
            self._selector.register(read_end, selectors.EVENT_READ, original)
        self._thread = threading.Thread(target=self._pump, name="olmo-output-tee", daemon=True)
        self._thread.start()

    @staticmethod
    def _flush_python_streams() -> None:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (AttributeError, OSError, ValueError):  # replaced or closed by a caller
                pass

    def _restore(self) -> None:
        """Point fds 1 and 2 at what they were (once; from close() or a failing pump)."""
        with self._restore_lock:
            if self._restored:
                return
            self._restored = True
            for fd, original in self._originals.items():
                os.dup2(original, fd)  # our pipe's write end was the only other name for fd: it closes

    def _pump(self) -> None:
        terminal_ok = {original: True for original in self._originals.values()}
        try:
            self._copy(terminal_ok)
        except BaseException:
            # Never leave the process writing into pipes nobody reads (it would block once they
            # fill): it writes to its terminal directly again; the log just stops here.
            self._restore()
            raise
        finally:
            for read_end in list(self._selector.get_map()):
                os.close(read_end)
            self._selector.close()
            for original in self._originals.values():
                os.close(original)
            self._log.close()

    def _copy(self, terminal_ok: Dict[int, bool]) -> None:
        while self._selector.get_map():
            for key, _ in self._selector.select():
                data = os.read(key.fd, 1 << 16)
                if not data:  # every write end is closed: this stream is done
                    self._selector.unregister(key.fd)
                    os.close(key.fd)
                    continue
                if terminal_ok[key.data]:
                    try:
                        _write_all(key.data, data)
                    except OSError:  # the terminal went away (a closed SSH session): keep logging
                        terminal_ok[key.data] = False
                try:
                    self._log.write(data)
                except OSError:  # a full disk must not stop the terminal copy
                    pass

    def close(self, log_only: str = "", timeout_s: float = DRAIN_TIMEOUT_S) -> None:
        """Stop copying; then append `log_only` to the log alone (a traceback that the
        interpreter is about to print on the terminal itself)."""
        if self._closed:
            return
        self._closed = True
        self._flush_python_streams()
        self._restore()
        self._thread.join(timeout_s)
        if log_only:
            try:
                with open(self.log_path, "ab") as log:
                    log.write(log_only.encode(errors="replace"))
            except OSError:  # the run dir is gone (a failed start removes what it created)
                pass


def start_tee(run_dir: Path) -> Optional[OutputTee]:
    """An OutputTee into run_dir/stdout.log, or None (and a warning) where the pipes cannot be made."""
    try:
        return OutputTee(run_dir / LOG_FILE)
    except OSError as exc:  # e.g. started with a closed stdout: train anyway, without the copy
        try:
            print(f"warning: cannot copy the output to {run_dir / LOG_FILE}: {exc}", file=sys.stderr,
                  flush=True)
        except (AttributeError, OSError, ValueError):
            pass
        return None
