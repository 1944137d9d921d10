"""The run-dir lock: a run is alive exactly while some process holds `<run dir>/run.lock`.

Every process of a run takes its own shared flock on that file and keeps it until it exits:
the launcher while it prepares the run, olmo-tui's wrapper, torchrun (taken for it just before
its exec) and every training rank. The kernel drops a lock when its holder dies, however it
dies (kill -9 included), so

- `is_alive(run_dir)` (can an exclusive lock be had? no: someone holds a shared one) tells a
  run that still trains from one whose processes are all gone, without trusting a recorded
  pid: whichever process died (the wrapper, torchrun, the launcher), the others still count;
- `holders(run_dir)` lists the pids holding it (from /proc/locks), so `olmo-tui cancel` can
  stop the training even when the wrapper that would normally do it was killed.

Best effort where flock is unsupported (some network filesystems): no lock, the run is then
judged by its recorded pid as before. Torch-free and stdlib-only: the engine, the wrapper and
olmo_tui.core all use it.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import List, Optional

from engine.run_dir import RUN_LOCK

_held: List[int] = []  # this process's lock fds: open for its lifetime (the lock goes with the process)


def open_lock(run_dir: Path) -> Optional[int]:
    """Take a shared lock on the run's lock file; returns its fd (None where flock is refused)."""
    try:
        fd = os.open(Path(run_dir) / RUN_LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)
    except OSError:
        os.close(fd)
        return None
    return fd


def for_child(run_dir: Path) -> Optional[int]:
    """An inheritable fd on the lock file, not locked yet: pass it to a child (Popen pass_fds)
    whose preexec_fn calls `take(fd)`, so the lock is the child's own (listed under its pid,
    held through its exec), then close it here."""
    try:
        fd = os.open(Path(run_dir) / RUN_LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError:
        return None
    os.set_inheritable(fd, True)
    return fd


def take(fd: int) -> None:
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)
    except OSError:
        pass


def hold(run_dir: Path) -> Optional[int]:
    """This process counts as the run's, until it exits (or `release(fd)`)."""
    fd = open_lock(run_dir)
    if fd is not None:
        _held.append(fd)
    return fd


def release(fd: Optional[int]) -> None:
    if fd is not None and fd in _held:
        _held.remove(fd)
        os.close(fd)


def is_alive(run_dir: Path) -> Optional[bool]:
    """True while any process of the run holds the lock; False once all are gone; None if the
    run dir has no lock file (a run from before the lock, or one that never started)."""
    try:
        fd = os.open(Path(run_dir) / RUN_LOCK, os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:  # flock unsupported here
        return None
    finally:
        os.close(fd)  # closing drops the exclusive lock the probe may have taken
    return False


def holders(run_dir: Path) -> List[int]:
    """Pids of the live processes holding the run's lock (Linux: /proc/locks)."""
    try:
        stat = (Path(run_dir) / RUN_LOCK).stat()
        with open("/proc/locks") as locks:
            lines = locks.read().splitlines()
    except OSError:
        return []
    inode = f"{os.major(stat.st_dev):02x}:{os.minor(stat.st_dev):02x}:{stat.st_ino}"
    pids = set()
    for line in lines:
        fields = line.split()
        if "->" in fields:  # a waiter for a lock, listed under its holder
            fields = fields[fields.index("->") + 1:]
            fields.insert(0, "")
        if len(fields) >= 6 and fields[1] == "FLOCK" and fields[5] == inode and fields[4].isdigit():
            pids.add(int(fields[4]))
    return sorted(pid for pid in pids if pid > 0 and os.path.exists(f"/proc/{pid}"))
