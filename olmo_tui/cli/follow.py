"""Headless launch and follow: `olmo-tui --preset NAME [overrides]` and `olmo-tui relaunch`.

stdout carries the job's log (or, with --detach, the run id / JSON record); stderr carries
narration and, on a terminal, a one-line progress bar. Exit codes (exit_codes.py): 0 the job
succeeded, 1 it failed (or was cancelled or lost), 2 usage/config error, 3 launch error,
130 interrupted. Interrupting (Ctrl-C, SIGTERM) leaves the run going unless
--cancel-on-interrupt; on a terminal it asks first, without one it asks nothing.
"""

from __future__ import annotations

import json
import signal
import sqlite3
import sys
import threading
import time
from pathlib import Path
from typing import Callable, Optional

from engine.errors import UserError, without_controls
from engine.run_dir import LOG_FILE, parse_metrics_line

from ..core import exit_codes
from ..core.backends.base import RUN_DIR_BACKENDS, BackendError, RunStatus, get_backend
from ..core.formatting import format_eta, human_count
from ..core.runs.registry import Registry, RegistryError, RunRecord
from ..core.runs.torchrun_report import ReportFilter


def err(message: str) -> None:
    print(without_controls(message), file=sys.stderr, flush=True)


def progress_line(metrics: dict, width: int = 24) -> str:
    """'step 120/300 [=========>         ] 40% loss 3.214 12.3K tok/s ETA 0:45'."""
    step, total = metrics.get("step"), metrics.get("total_steps")
    parts = [f"step {step}" + (f"/{total}" if total else "")]
    if total:
        share = min(max(step / total, 0.0), 1.0)
        filled = int(share * width)
        parts.append("[" + "=" * filled + (">" if filled < width else "") + " " * (width - filled - 1) + f"] {share:4.0%}")
    if metrics.get("loss") is not None:
        parts.append(f"loss {metrics['loss']:.4g}")
    tps = metrics.get("tps_total") or metrics.get("tps")
    if tps:
        parts.append(f"{human_count(tps)} tok/s")
    if metrics.get("mfu") is not None:
        parts.append(f"MFU {metrics['mfu']:.1f}%")
    if metrics.get("eta_s") is not None:
        parts.append(f"ETA {format_eta(metrics['eta_s'])}")
    return " ".join(parts)


def result_code(run: RunRecord) -> int:
    return exit_codes.OK if run.status == RunStatus.SUCCEEDED else exit_codes.JOB_FAILED


def describe_end(run: RunRecord) -> str:
    code = f", exit code {run.exit_code}" if run.exit_code is not None else ""
    why = f": {run.message}" if run.message and run.status != RunStatus.SUCCEEDED else ""
    return f"run {run.id} {run.status}{code}{why}"


class Follower:
    """Streams a run's log to stdout until it ends; the progress bar goes to stderr on a TTY."""

    def __init__(self, run: RunRecord, registry: Registry, out=None, progress: Optional[bool] = None,
                 stop: Optional[threading.Event] = None):
        self.run = run
        self.registry = registry
        self.out = out or sys.stdout
        self.progress = sys.stderr.isatty() if progress is None else progress
        self.stop = stop or threading.Event()  # set: stop following at the next poll
        self._bar_shown = False

    def _clear_bar(self) -> None:
        if self._bar_shown:
            sys.stderr.write("\r\033[K")
            self._bar_shown = False

    def follow(self, follow: bool = True) -> RunRecord:
        from ..core.launch.run_manager import refresh_run

        backend = get_backend(self.run.backend)
        # torchrun's failure report stays in the log file, off the terminal (torchrun_report.py).
        report = ReportFilter(str(Path(self.run.run_dir) / LOG_FILE) if self.run.backend in RUN_DIR_BACKENDS else None)
        for line in backend.follow_logs(self.run, self.stop, follow=follow):
            metrics = parse_metrics_line(line)
            self._clear_bar()
            for shown in report.feed(line):
                self.out.write(shown + "\n")
            self.out.flush()
            if metrics and self.progress:
                sys.stderr.write(progress_line(metrics))
                sys.stderr.flush()
                self._bar_shown = True
        for shown in report.flush():
            self.out.write(shown + "\n")
        self._clear_bar()
        if not follow:
            return self.run
        # The log is complete; the exit record may land a moment later.
        deadline = time.monotonic() + 30
        run = refresh_run(self.run, self.registry)
        while not run.terminal and time.monotonic() < deadline and not self.stop.is_set():
            time.sleep(0.2)
            run = refresh_run(run, self.registry)
        return run


def ask_yes_no(question: str) -> bool:
    if not sys.stdin.isatty():
        return False
    try:
        return input(question).strip().lower() in ("y", "yes")
    except (EOFError, KeyboardInterrupt):
        return False


def handle_interrupt(run: RunRecord, registry: Registry, cancel_on_interrupt: bool, grace_s: float) -> int:
    from ..core.launch.run_manager import cancel_run

    print(file=sys.stderr)
    if cancel_on_interrupt or ask_yes_no(f"cancel run {run.id} too? [y/N] "):
        err(f"cancelling {run.id} (SIGTERM, SIGKILL after {grace_s:g} s)")
        run = cancel_run(run, grace_s=grace_s, registry=registry, wait_s=grace_s + 30)
        err(describe_end(run) if run.terminal else f"run {run.id} is still stopping")
    else:
        err(f"run {run.id} keeps going; follow it with: olmo-tui logs {run.id} -f")
    return exit_codes.INTERRUPTED


class Interrupts:
    """Ctrl-C and SIGTERM to this command (the job itself is a separate process) while it follows a
    run: the first one sets `stop`, so the follower ends at its next poll and the caller handles it
    in plain code, instead of a KeyboardInterrupt landing wherever the follower happens to be (a
    registry transaction, a file write). A second signal interrupts at once.

    A signal the command was started with ignored stays ignored: bash starts `olmo-tui ... &` in
    a script with SIGINT ignored, so that a Ctrl-C meant for the script leaves it alone."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, stop: threading.Event):
        self.stop = stop
        self.received = False
        self._previous = {}

    def _on_signal(self, signum, frame) -> None:
        if self.received:
            raise KeyboardInterrupt
        self.received = True
        self.stop.set()

    def __enter__(self) -> "Interrupts":
        try:
            for signum in self.SIGNALS:
                if signal.getsignal(signum) is not signal.SIG_IGN:
                    self._previous[signum] = signal.signal(signum, self._on_signal)
        except ValueError:  # not the main thread (tests calling in-process): leave signals alone
            pass
        return self

    def __exit__(self, *exc) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)


def report_launched(run: RunRecord, args) -> None:
    if args.detach:
        print(json.dumps(run.to_json(), indent=2) if args.json else run.id, flush=True)
    else:
        err(f"run {run.id} started (pid {run.pid or '-'}) in {run.run_dir}")


def launch_and_follow(start: Callable[[Registry], RunRecord], args) -> int:
    """Shared by a fresh launch and a relaunch: start, then detach or follow to the end."""
    registry = Registry()
    run: Optional[RunRecord] = None
    stop = threading.Event()
    try:
        with Interrupts(stop) as interrupts:
            try:
                run = start(registry)
            except UserError as exc:  # found by the pre-flight: nothing was created
                err(f"error: {exc}")
                return exit_codes.USAGE
            except (BackendError, RegistryError, OSError, sqlite3.Error) as exc:
                err(f"error: launch failed: {exc}")
                return exit_codes.LAUNCH
            report_launched(run, args)
            if args.detach:
                return exit_codes.OK
            if not interrupts.received:
                run = Follower(run, registry, stop=stop).follow()
            if not interrupts.received:
                err(describe_end(run))
                return result_code(run)
    except KeyboardInterrupt:  # a second signal, or one before the run existed
        if run is None:
            return exit_codes.INTERRUPTED
    # Interrupted: handled here, in plain code (a further Ctrl-C now ends the command: exit 130).
    return handle_interrupt(run, registry, args.cancel_on_interrupt, args.grace)


def launch_headless(cfg, args, argv) -> int:
    from ..core.launch.run_manager import start_run

    return launch_and_follow(lambda registry: start_run(cfg, preset=args.preset, registry=registry), args)
