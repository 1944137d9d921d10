"""The tiny process that sits between the app and torchrun on this machine.

    python -m olmo_tui.core.backends.local_wrapper RUN_DIR -- torchrun argv...

It detaches (forks; the parent prints the child's pid and exits, so the app never holds a
zombie and the job survives the app, the terminal and a dropped SSH session), sends
torchrun's output to RUN_DIR/stdout.log, and when torchrun ends writes RUN_DIR/exit.json
({"exit_code", "ended", "started", "launcher_exit_code", "cancelled"}).

exit_code is rank 0's own exit code when torchrun reports a failed worker (torchrun itself
always exits 1 then), so a config error (2) or a graceful stop (143) shows as such.

Stopping (SIGTERM to this process): the workers get SIGTERM (they write a final checkpoint
and exit 143); after the grace period in RUN_DIR/cancel.json (default 60 s) everything left
gets SIGKILL. This process is a child subreaper, so workers orphaned by torchrun's death are
still found and killed. It imports nothing heavy: it lives for the whole run.
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import List, Optional

from engine import run_lock
from engine.atomic import write_json_atomic
from engine.disk_errors import ADVICE, StorageError
from engine.run_dir import ENGINE_EXIT_RECORD, EXIT_RECORD, LOG_FILE, exit_record, read_exit_record

from .run_files import CANCEL_REQUEST, rank_exit_code

PR_SET_CHILD_SUBREAPER = 36
EXIT_RESERVE = ".exit-reserve"
EXIT_RESERVE_BYTES = 64 << 10  # exit.json, its temp file and a directory block, with room to spare
DEFAULT_GRACE_S = 60.0


def children_of(pid: int) -> List[int]:
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        # Fields after the command name (which may hold spaces) start after the last ')'.
        if int(stat[stat.rfind(b")") + 2:].split()[1]) == pid:
            found.append(int(entry))
    return found


def descendants_of(pid: int) -> List[int]:
    out, todo = [], [pid]
    while todo:
        kids = children_of(todo.pop())
        out.extend(kids)
        todo.extend(kids)
    return out


def signal_all(pids: List[int], sig: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


class Wrapper:
    def __init__(self, run_dir: Path, argv: List[str]):
        self.run_dir = run_dir
        self.argv = argv
        self.child: Optional[subprocess.Popen] = None
        self.cancelled = False

    def grace_s(self) -> float:
        try:
            return float(json.loads((self.run_dir / CANCEL_REQUEST).read_text())["grace_s"])
        except (OSError, ValueError, KeyError, TypeError):
            return DEFAULT_GRACE_S

    def on_stop(self, signum, frame) -> None:
        if self.cancelled or self.child is None:
            return
        self.cancelled = True
        workers = children_of(self.child.pid)
        # Workers run in their own sessions (torchrun starts them so); signalling them
        # directly gives each the same graceful stop and lets torchrun report their codes.
        signal_all(workers or [self.child.pid], signal.SIGTERM)
        print(f"[olmo-tui] stop requested: SIGTERM sent to {len(workers) or 1} process(es); "
              f"SIGKILL after {self.grace_s():g} s", flush=True)
        threading.Thread(target=self.kill_after_grace, daemon=True).start()

    def kill_after_grace(self) -> None:
        deadline = time.monotonic() + self.grace_s()
        while time.monotonic() < deadline:
            if self.child.poll() is not None:
                return
            time.sleep(0.2)
        print("[olmo-tui] grace period over: SIGKILL", flush=True)
        signal_all([self.child.pid, *descendants_of(os.getpid())], signal.SIGKILL)

    def run(self) -> int:
        started = time.time()
        try:  # room for exit.json should the run fill the disk (write_exit frees it)
            with open(self.run_dir / EXIT_RESERVE, "wb") as reserve:
                reserve.write(bytes(EXIT_RESERVE_BYTES))
        except OSError:
            pass
        log = open(self.run_dir / LOG_FILE, "ab", buffering=0)
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, self.on_stop)
        signal.signal(signal.SIGINT, self.on_stop)
        try:
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
        except (OSError, AttributeError):
            pass  # not Linux: orphans of a killed torchrun are then not ours to clean up
        # torchrun takes its own share of the run-dir lock just before its exec: while it (or
        # any rank) lives the run counts as alive, even if this process is killed.
        lock_fd = run_lock.for_child(self.run_dir)
        try:
            self.child = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                          cwd=self.run_dir, pass_fds=() if lock_fd is None else (lock_fd,),
                                          preexec_fn=None if lock_fd is None else lambda: run_lock.take(lock_fd))
        except OSError as exc:
            print(f"[olmo-tui] could not start {self.argv[0]}: {exc}", flush=True)
            self.write_exit(exit_record(127, started))
            return 127
        finally:
            if lock_fd is not None:
                os.close(lock_fd)
        launcher_code = self.child.wait()
        # Whatever torchrun left behind (it normally reaps its workers) is killed and reaped.
        leftovers = descendants_of(os.getpid())
        signal_all(leftovers, signal.SIGKILL)
        for _ in leftovers:
            try:
                os.waitpid(-1, 0)
            except ChildProcessError:
                break
        if launcher_code < 0:
            launcher_code = 128 - launcher_code
        # A failed torchrun: its report of the failed rank's code, else rank 0's own record (a
        # torchrun killed after the training ended), else torchrun's code (137: SIGKILL).
        engine = read_exit_record(self.run_dir, ENGINE_EXIT_RECORD) or {}
        exit_code = launcher_code if launcher_code == 0 else (
            rank_exit_code(self.run_dir / LOG_FILE) or engine.get("exit_code", launcher_code))
        self.write_exit(exit_record(exit_code, started, launcher_code, self.cancelled))
        return exit_code

    def write_exit(self, record: dict) -> None:
        """exit.json, also on a full disk: the space reserved at start is given back first."""
        try:
            write_json_atomic(self.run_dir / EXIT_RECORD, record, commit=True)
        except OSError as exc:
            if exc.errno not in ADVICE:
                raise
            (self.run_dir / EXIT_RESERVE).unlink(missing_ok=True)
            record["message"] = str(StorageError("", self.run_dir, exc))
            write_json_atomic(self.run_dir / EXIT_RECORD, record, commit=True)
        (self.run_dir / EXIT_RESERVE).unlink(missing_ok=True)


def main(argv: List[str]) -> int:
    if len(argv) < 3 or argv[1] != "--":
        print("usage: python -m olmo_tui.core.backends.local_wrapper RUN_DIR -- COMMAND...", file=sys.stderr)
        return 2
    run_dir = Path(argv[0]).resolve()
    # The run-dir lock before the pid goes out: the launcher lets go of its own share only once
    # it has the pid, so the run never looks dead in between (engine/run_lock.py).
    run_lock.hold(run_dir)
    child = os.fork()
    if child:
        print(child, flush=True)  # the launcher reads the detached pid from this line
        os._exit(0)
    run_lock.hold(run_dir)  # listed under this (the detached) pid too
    code = Wrapper(run_dir, argv[2:]).run()
    os._exit(code)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
