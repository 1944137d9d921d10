"""Reading a run's files while they grow: the log, metrics.jsonl, and the metrics lines inside a
log stream (the Beaker log carries the same records). The names and the line format are the run
dir's contract, engine/run_dir.py.

The files on disk are the source of truth, so re-attaching after the app restarts is just
reading them again from the start.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional

from engine.errors import one_line
from engine.run_dir import METRICS_FILE

# Lines worth a colour and a jump key: torchrun's glog-style E/W prefixes, Python errors.
ERROR_LINE = re.compile(r"^E\d{4} |\b(error|exception|traceback|fatal)\b|\w+Error\b|exitcode: [1-9]", re.IGNORECASE)
WARNING_LINE = re.compile(r"^W\d{4} |\bwarn(ing)?\b", re.IGNORECASE)
# The line that says why a job failed: the engine's one-line user error, or the last line of
# a Python traceback ("RuntimeError: ...") -- not torchrun's own report that follows it.
USER_ERROR = re.compile(r"^error: ")
EXCEPTION_LINE = re.compile(r"^(\w+\.)*\w*(Error|Exception)\b.*: ")
# What torch puts before each line of an uncaught exception once a process group exists
# (distributed_c10d's excepthook: "[rank0]: RuntimeError: ..."), and torchrun's tee prefix.
RANK_PREFIX = re.compile(r"^\[(rank|default)\d+\]:\s?")


def line_kind(line: str) -> Optional[str]:
    """'error', 'warning' or None."""
    if ERROR_LINE.search(line):
        return "error"
    if WARNING_LINE.search(line):
        return "warning"
    return None


def failure_line(log_path: Path, window: int = 256 << 10) -> Optional[str]:
    """Why the job failed, read from the end of its log (None if nothing says)."""
    try:
        with open(log_path, "rb") as f:
            f.seek(max(0, f.seek(0, os.SEEK_END) - window))
            lines = [RANK_PREFIX.sub("", line) for line in f.read().decode("utf-8", errors="replace").splitlines()]
    except OSError:
        return None
    for line in lines:
        if USER_ERROR.match(line):
            return one_line(line.strip())
    found = [line for line in lines if EXCEPTION_LINE.match(line) and "torch.distributed.elastic" not in line]
    return one_line(found[-1].strip()[:300]) if found else None



class FileTail:
    """Incremental reader of a growing text file: each read_lines() returns the complete new
    lines since the last call (a partial last line waits for its newline). Copes with the
    file not existing yet and with it being truncated or replaced (starts over)."""

    def __init__(self, path: Path, chunk_bytes: int = 1 << 20):
        self.path = Path(path)
        self.chunk_bytes = chunk_bytes
        self._file = None
        self._inode: Optional[int] = None
        self._pending = b""
        self.offset = 0

    def _open(self) -> bool:
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            return False
        if self._file is not None and (stat.st_ino != self._inode or stat.st_size < self.offset):
            self.close()  # replaced or truncated: start over
        if self._file is None:
            self._file = open(self.path, "rb")
            self._inode = stat.st_ino
            self.offset = 0
            self._pending = b""
        return True

    def read_lines(self, max_bytes: Optional[int] = None) -> List[str]:
        """New complete lines (decoded leniently, without newlines). At most about max_bytes
        (default chunk_bytes) are read per call so a huge backlog arrives in slices."""
        if not self._open():
            return []
        self._file.seek(self.offset)
        data = self._file.read(max_bytes or self.chunk_bytes)
        if not data:
            return []
        self.offset += len(data)
        data = self._pending + data
        cut = data.rfind(b"\n")
        if cut < 0:
            self._pending = data
            return []
        self._pending = data[cut + 1:]
        return data[:cut].decode("utf-8", errors="replace").split("\n")

    def flush_partial(self) -> List[str]:
        """The unterminated last line, once the writer is known to be done."""
        rest, self._pending = self._pending, b""
        return [rest.decode("utf-8", errors="replace")] if rest else []

    def at_end(self) -> bool:
        try:
            return self.offset >= self.path.stat().st_size
        except FileNotFoundError:
            return True

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
        self._file = None


def follow_file_batches(path: Path, stop: threading.Event, finished: Callable[[], bool],
                        poll_s: float = 0.1) -> Iterator[List[str]]:
    """Lists of lines of `path` from the start, then new lines as they are written, until
    `finished()` is true and the file is read to its end, or `stop` is set. Batches keep the
    per-line cost of a fast log (a million lines) low for the reader."""
    tail = FileTail(path)
    try:
        while not stop.is_set():
            lines = tail.read_lines()
            if lines:
                yield lines
                continue
            if finished() and tail.at_end():
                # One last read: the writer may have appended between the two checks.
                last = tail.read_lines() + tail.flush_partial()
                if last:
                    yield last
                return
            stop.wait(poll_s)
    finally:
        tail.close()


def follow_file(path: Path, stop: threading.Event, finished: Callable[[], bool],
                poll_s: float = 0.1) -> Iterator[str]:
    """follow_file_batches, one line at a time."""
    for batch in follow_file_batches(path, stop, finished, poll_s):
        yield from batch


def batched(lines: Iterator[str], stop: threading.Event, max_lines: int = 10_000,
            max_wait_s: float = 0.05) -> Iterator[List[str]]:
    """Group a line iterator (e.g. a Beaker log stream) into lists for the same consumers."""
    batch: List[str] = []
    started = time.monotonic()
    for line in lines:
        batch.append(line)
        if len(batch) >= max_lines or time.monotonic() - started > max_wait_s:
            yield batch
            batch, started = [], time.monotonic()
        if stop.is_set():
            break
    if batch:
        yield batch


def read_metrics(path: Path) -> List[Dict[str, Any]]:
    """All records of a metrics.jsonl (a torn last line is skipped)."""
    records = []
    try:
        with open(path, "rb") as f:
            for raw in f:
                try:
                    record = json.loads(raw)
                except ValueError:
                    continue
                if isinstance(record, dict):
                    records.append(record)
    except FileNotFoundError:
        pass
    return records


def last_metrics(path: Path, window: int = 64 << 10) -> Optional[Dict[str, Any]]:
    """The newest complete record of a metrics.jsonl, reading only its tail."""
    try:
        with open(path, "rb") as f:
            size = f.seek(0, os.SEEK_END)
            f.seek(max(0, size - window))
            lines = f.read().split(b"\n")
    except FileNotFoundError:
        return None
    for raw in reversed(lines):
        try:
            record = json.loads(raw)
        except ValueError:
            continue
        if isinstance(record, dict) and "step" in record:
            return record
    return None


def summary_of(record: Optional[Dict[str, Any]]) -> Dict[str, Any]:
    """The few numbers the runs table shows, from one metrics record."""
    if not record:
        return {}
    keys = ("step", "total_steps", "loss", "tps", "tps_total", "mfu", "tokens", "eta_s", "time")
    return {key: record.get(key) for key in keys if record.get(key) is not None}


def progress_of(run_dir: Path) -> Dict[str, Any]:
    """The registry fields every backend refreshes from a run dir's newest metrics record."""
    record = last_metrics(Path(run_dir) / METRICS_FILE)
    if not record:
        return {}
    return {"latest_step": record.get("step"), "total_steps": record.get("total_steps"),
            "summary": summary_of(record)}


def wait_for(predicate: Callable[[], bool], timeout_s: float, poll_s: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(poll_s)
    return predicate()
