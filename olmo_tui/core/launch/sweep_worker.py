"""The sweep worker: starts a sweep's queued runs, at most max_parallel at once, until every
run of the sweep has ended; calls the notify hook on each end, stall or stability alert.

    python -m olmo_tui.core.launch.sweep_worker SWEEP_NAME

Started by sweep_queue.spawn_worker in its own session. It takes the sweep's lock, forks (the
parent prints the child's pid and exits, so whoever started it holds no zombie, and killing
that launcher, even with SIGKILL, leaves the worker running) and logs to the sweep's log file.
A second worker for the same sweep finds the lock taken and exits at once ("busy").

It imports no torch: the runs are separate processes (the backends start them detached), so
stopping the worker never stops a run, and a restarted worker simply carries on from the
registry.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional, Set, Tuple

from engine.run_dir import LOG_FILE, METRICS_FILE, record_alerts
from engine.run_marker import process_start_ticks

from . import notify
from ..runs.health import stall_info
from ..runs.registry import Registry, RunRecord
from .run_manager import refresh_run
from .sweep_queue import get_sweep, log_path, start_queued, try_lock, update_sweep

POLL_S = 0.5


def log(message: str) -> None:
    print(time.strftime("%Y-%m-%d %H:%M:%S ") + message, flush=True)


def last_activity(run: RunRecord) -> Optional[float]:
    """When the run last wrote a log line or a metrics record (None if neither exists yet)."""
    times = []
    for name in (METRICS_FILE, LOG_FILE):
        try:
            times.append((Path(run.run_dir) / name).stat().st_mtime)
        except OSError:
            pass
    return max(times) if times else None


def read_alerts(path: Path, offset: int) -> Tuple[List[Tuple[int, dict]], int, int]:
    """(step, alert) of the complete records past byte `offset`, where the read began (0 once
    the file is shorter than `offset`: a resume rewrote it) and the offset to read from next."""
    try:
        with open(path, "rb") as f:
            if f.seek(0, os.SEEK_END) < offset:
                offset = 0
            f.seek(offset)
            data = f.read()
    except OSError:
        return [], 0, 0
    complete = data[:data.rfind(b"\n") + 1]  # a line still being written waits for the next look
    found = []
    for raw in complete.splitlines():
        try:
            record = json.loads(raw)
        except ValueError:
            continue
        if isinstance(record, dict):
            found.extend((record.get("step"), alert) for alert in record_alerts(record))
    return found, offset, offset + len(complete)


class Worker:
    def __init__(self, name: str, registry: Optional[Registry] = None, poll_s: float = POLL_S):
        self.name = name
        self.registry = registry or Registry()
        self.poll_s = poll_s
        self.stalled: Set[str] = set()
        # run id -> (bytes of metrics.jsonl already read, alerts found in them)
        self.alert_offsets: Dict[str, Tuple[int, int]] = {}

    def _notify(self, event: str, run: Optional[RunRecord] = None, **extra) -> None:
        sweep = get_sweep(self.name, self.registry)
        spec = sweep.notify if sweep else None
        if spec is None:
            return
        for problem in notify.send(spec, notify.payload(event, run, sweep=self.name, **extra)):
            log(problem)

    def _record_notified(self, run_ids: List[str]) -> None:
        sweep = get_sweep(self.name, self.registry)
        spec = dict(sweep.spec)
        spec["notified"] = sorted(set(spec.get("notified", [])) | set(run_ids))
        update_sweep(self.name, self.registry, spec=spec)

    def step(self) -> bool:
        """One look: record ends, notify, fill free slots. False once nothing is left to do."""
        sweep = get_sweep(self.name, self.registry)
        if sweep is None:
            log(f"sweep {self.name} is gone from the registry; stopping")
            return False
        runs = [refresh_run(run, self.registry) for run in self.registry.of_sweep(self.name)]
        self._check_alerts(runs)  # before the end events: a stop alert comes first
        notified = set(sweep.spec.get("notified", []))
        ended_now = [run for run in runs if run.terminal and run.id not in notified]
        for run in ended_now:
            log(f"run {run.id} {run.status}" + (f": {run.message}" if run.message else ""))
            self._notify(notify.event_for(run) or run.status, run)
        if ended_now:
            self._record_notified([run.id for run in ended_now])
        self._check_stalls(runs, sweep.notify.stall_after_s if sweep.notify else None)
        active = [run for run in runs if not run.terminal and not run.waiting_in_queue]
        waiting = [run for run in runs if run.waiting_in_queue]
        if not active and not waiting:
            return False
        for run in waiting[:max(0, sweep.max_parallel - len(active))]:
            started = start_queued(run, self.registry)
            log(f"run {started.id} {started.status}" + (f" (pid {started.pid})" if started.pid else "")
                + (f": {started.message}" if started.terminal and started.message else ""))
        return True

    def _check_stalls(self, runs: List[RunRecord], stall_after_s: Optional[float]) -> None:
        if not stall_after_s:
            return
        now = time.time()
        for run in runs:
            if run.terminal or run.waiting_in_queue or run.id in self.stalled:
                continue
            marked = stall_info(run)  # the engine's hang watch: no step for a multiple of the median
            if marked is not None:
                self.stalled.add(run.id)
                log(f"run {run.id} stalled after step {marked.get('step')}: stacks in its run dir")
                self._notify("stalled", run, quiet_s=round(now - marked.get("since", now)), stall=marked)
                continue
            seen = last_activity(run) or run.started
            if seen and now - seen > stall_after_s:
                self.stalled.add(run.id)
                log(f"run {run.id} stalled: nothing written for {now - seen:.0f} s")
                self._notify("stalled", run, quiet_s=round(now - seen))

    def _check_alerts(self, runs: List[RunRecord]) -> None:
        """An `alert` event for each new alert in a run's metrics.jsonl. How many each run has had
        sent is kept in the sweep's spec, so a restarted worker sends none twice."""
        sweep = get_sweep(self.name, self.registry)
        sent = dict(sweep.spec.get("alerted", {}))
        before = dict(sent)
        for run in runs:
            if run.waiting_in_queue or not run.run_dir:
                continue
            offset, seen = self.alert_offsets.get(run.id, (0, 0))
            alerts, began, offset = read_alerts(Path(run.run_dir) / METRICS_FILE, offset)
            if began == 0:  # the file from its start (first look, or rewritten by a resume)
                seen = 0
            for step, alert in alerts:
                seen += 1
                if seen > sent.get(run.id, 0):
                    sent[run.id] = seen
                    log(f"run {run.id} alert at step {step}: {alert.get('message')}")
                    self._notify("alert", run, alert_step=step, alert=alert)
            self.alert_offsets[run.id] = (offset, seen)
        if sent != before:
            update_sweep(self.name, self.registry, spec={**get_sweep(self.name, self.registry).spec, "alerted": sent})

    def run(self) -> int:
        update_sweep(self.name, self.registry, worker_pid=os.getpid(), worker_start=process_start_ticks(os.getpid()))
        log(f"worker for sweep {self.name} started (pid {os.getpid()})")
        while self.step():
            time.sleep(self.poll_s)
        runs = self.registry.of_sweep(self.name)
        counts = {}
        for run in runs:
            counts[run.status] = counts.get(run.status, 0) + 1
        summary = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
        update_sweep(self.name, self.registry, ended=time.time(), message=summary)
        log(f"sweep {self.name} done: {summary}")
        self._notify("sweep_done", None, counts=counts)
        return 0


def main(argv: List[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m olmo_tui.core.launch.sweep_worker SWEEP_NAME", file=sys.stderr)
        return 2
    name = argv[0]
    lock = try_lock(name)  # taken before the fork: the child inherits it, the parent can say "busy"
    if lock is None:
        print("busy", flush=True)
        return 0
    child = os.fork()
    if child:
        print(child, flush=True)  # spawn_worker reads the detached pid from this line
        os._exit(0)
    out = open(log_path(name), "ab", buffering=0)
    os.dup2(out.fileno(), 1)
    os.dup2(out.fileno(), 2)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    sys.stdout = os.fdopen(1, "w", buffering=1)
    sys.stderr = os.fdopen(2, "w", buffering=1)
    try:
        code = Worker(name).run()
    except Exception as exc:  # the registry vanished, a disk filled: say so in the log, a later look restarts us
        log(f"worker stopped by an error: {type(exc).__name__}: {exc}")
        code = 1
    os._exit(code)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
