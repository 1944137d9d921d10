"""Hang detection: a watchdog thread on every rank, stack dumps into the run directory.

Each rank times its steps (post_step to post_step). Its watchdog thread, once three steps are
known, looks every second: no finished step for `multiple` x the median step time (at least
`min_s`) is a stall. Then this rank appends every thread's Python stack (faulthandler) to
<run dir>/stacks/rank<R>.txt and prints `alert: stalled ...` on stderr; rank 0 writes
<run dir>/stalled.json (engine/run_dir.py's STALL_MARKER), which the runs table and the monitor
show as `stalled`, and the sweep worker sends as a `stalled` event. A rank blocked in a
collective waiting for a hung peer stalls too, so every rank's stack is written. When steps
finish again the marker goes. Nothing is written while the run is healthy.

The thread never touches torch or the process group: it runs while the main thread sleeps in
Python or waits inside a C call.

Test hook: OLMO_TUI_TEST_HANG="RANK:STEP:SECONDS" makes that rank sleep in `_test_hang_sleep`
before that step (the frame the stack file names).
"""

from __future__ import annotations

import faulthandler
import json
import os
import statistics
import sys
import threading
import time
from collections import deque
from typing import Any, Deque, Dict, Optional

from engine.atomic import write_atomic
from engine.config.trainer import HangWatchConfig
from engine.run_dir import STACKS_DIR, STALL_MARKER

from ..callback import Callback

TEST_HANG_ENV = "OLMO_TUI_TEST_HANG"
POLL_S = 1.0


def _test_hang_sleep(seconds: float) -> None:
    time.sleep(seconds)


class HangWatchCallback(Callback):
    name = "hang_watch"
    priority = -30  # after every other post_step: a step is finished once its callbacks are

    def __init__(self, config: HangWatchConfig):
        super().__init__()
        self.config = config
        self.step_times: Deque[float] = deque(maxlen=50)
        self._last = time.monotonic()
        self._stalled = False
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._hang = self._parse_hang(os.environ.get(TEST_HANG_ENV))

    @staticmethod
    def _parse_hang(value: Optional[str]):
        try:
            rank, step, seconds = (value or "").split(":")
            return int(rank), int(step), float(seconds)
        except ValueError:
            return None

    def pre_train(self) -> None:
        trainer = self.trainer
        if trainer.is_rank0:  # a marker left by an earlier attempt that died stalled
            (trainer.run_dir / STALL_MARKER).unlink(missing_ok=True)
        self._last = time.monotonic()
        self._thread = threading.Thread(target=self._watch, name="hang-watch", daemon=True)
        self._thread.start()

    def pre_step(self, batch: Dict[str, Any]) -> None:
        if self._hang and self._hang[:2] == (self.trainer.rank, self.trainer.global_step + 1):
            _test_hang_sleep(self._hang[2])

    def post_step(self) -> None:
        now = time.monotonic()
        self.step_times.append(now - self._last)
        self._last = now
        if self._stalled:
            self._stalled = False
            self.trainer.log(f"steps resumed at step {self.trainer.global_step}")
            if self.trainer.is_rank0:
                (self.trainer.run_dir / STALL_MARKER).unlink(missing_ok=True)

    def bound_s(self) -> Optional[float]:
        """Seconds without a finished step that make a stall (None until three steps are known)."""
        if len(self.step_times) < 3:
            return None
        return max(self.config.min_s, self.config.multiple * statistics.median(self.step_times))

    def _watch(self) -> None:
        while not self._stop.wait(POLL_S):
            bound = self.bound_s()
            quiet = time.monotonic() - self._last
            if bound is None or self._stalled or quiet <= bound:
                continue
            self._stalled = True
            self._report(quiet, bound)

    def _report(self, quiet: float, bound: float) -> None:
        trainer = self.trainer
        step = trainer.global_step
        median = statistics.median(self.step_times)
        stacks = trainer.run_dir / STACKS_DIR / f"rank{trainer.rank}.txt"
        stacks.parent.mkdir(parents=True, exist_ok=True)
        with open(stacks, "a", encoding="utf-8") as out:  # each stall appends its dump
            out.write(f"--- rank {trainer.rank}: stalled after step {step}, no step for {quiet:.0f} s "
                      f"({time.strftime('%Y-%m-%d %H:%M:%S')}) ---\n")
            out.flush()
            faulthandler.dump_traceback(file=out, all_threads=True)
        print(f"alert: stalled: [rank {trainer.rank}] no step finished for {quiet:.0f} s after step {step} "
              f"(bound {bound:.0f} s: {self.config.multiple:g} x the median step {median:.2f} s); "
              f"Python stacks in {stacks}", file=sys.stderr, flush=True)
        if trainer.is_rank0:
            write_atomic(trainer.run_dir / STALL_MARKER, json.dumps(
                {"step": step, "since": time.time() - quiet, "bound_s": round(bound, 3),
                 "median_step_s": round(median, 4)}))

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        if self._stalled and self.trainer.is_rank0:
            (self.trainer.run_dir / STALL_MARKER).unlink(missing_ok=True)
