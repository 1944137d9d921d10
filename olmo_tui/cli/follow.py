"""Headless launch and follow: `olmo-tui --preset NAME [overrides]` and `olmo-tui relaunch`.

stdout carries the job's log (or, with --detach, the run id / JSON record); stderr carries
narration and, on a terminal, a one-line progress bar. Exit codes (exit_codes.py): 0 the job
succeeded, 1 it failed (or was cancelled or lost), 2 usage/config error, 3 launch error,
130 interrupted. Interrupting (Ctrl-C, SIGTERM) leaves the run going unless
--cancel-on-interrupt; on a terminal it asks first, without one it asks nothing.
"""

from __future__ import annotations

import json
import sqlite3
import sys
import time
from pathlib import Path
from typing import Callable, Optional

from engine.config.errors import ConfigError
from engine.errors import UserError, without_controls
from engine.run_dir import LOG_FILE, parse_metrics_line

from ..core import exit_codes
from ..core.backends.base import BackendError, RunStatus, get_backend, sees_local_files
from ..core.formatting import format_eta, human_count
from ..core.runs.registry import Registry, RegistryError, RunRecord
from ..core.runs.torchrun_report import ReportFilter
from .signals import Interrupts, WakeFlag


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
                 stop: Optional[WakeFlag] = None):
        self.run = run
        self.registry = registry
        self.out = out or sys.stdout
        self.progress = sys.stderr.isatty() if progress is None else progress
        self.stop = stop or WakeFlag()  # set: stop following at the next poll
        self._bar_shown = False

    def _clear_bar(self) -> None:
        if self._bar_shown:
            sys.stderr.write("\r\033[K")
            self._bar_shown = False

    def started(self) -> RunRecord:
        """The run once its backend has it: a run queued for a notify hook's worker is launched
        by that worker a moment later (or fails to launch, which ends it)."""
        run = self.run
        while run.sweep and (run.waiting_in_queue or run.status == RunStatus.STARTING) and not self.stop.is_set():
            self.stop.wait(0.2)
            run = self.registry.get(run.id) or run
        return run

    def follow(self, follow: bool = True) -> RunRecord:
        from ..core.launch.run_manager import refresh_run

        self.run = self.started() if follow else self.run
        if self.run.terminal and self.run.started is None:  # the worker could not launch it
            return self.run
        backend = get_backend(self.run.backend)
        # torchrun's failure report stays in the log file, off the terminal (torchrun_report.py).
        report = ReportFilter(str(Path(self.run.run_dir) / LOG_FILE) if sees_local_files(self.run.backend) else None)
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
            self.stop.wait(0.2)
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


def report_launched(run: RunRecord, args) -> None:
    if args.detach:
        print(json.dumps(run.to_json(), indent=2) if args.json else run.id, flush=True)
    elif run.waiting_in_queue:
        err(f"run {run.id} queued in sweep {run.sweep}, whose worker starts it and calls the notify hook; "
            f"in {run.run_dir}")
    else:
        err(f"run {run.id} started (pid {run.pid or '-'}) in {run.run_dir}")


def launch_and_follow(start: Callable[[Registry], RunRecord], args) -> int:
    """Shared by a fresh launch and a relaunch: start, then detach or follow to the end."""
    registry = Registry()
    run: Optional[RunRecord] = None
    stop = WakeFlag()
    try:
        with Interrupts(stop) as interrupts:
            try:
                run = start(registry)
            except UserError as exc:  # found by the pre-flight: nothing was created
                err(f"error: {exc}")
                return exit_codes.USAGE
            except ConfigError as exc:  # the same, from a backend's own rule (Beaker, SLURM) or the hook
                for line in exc.lines():
                    err(line)
                return exit_codes.USAGE
            except (BackendError, RegistryError, OSError, sqlite3.Error) as exc:
                err(f"error: launch failed: {exc}")
                return exit_codes.LAUNCH
            report_launched(run, args)
            code = save_spec_of(run, args)
            if args.detach or code is not None:
                return code or exit_codes.OK
            if not interrupts.received:
                run = Follower(run, registry, stop=stop).follow()
            if not interrupts.received:
                err(describe_end(run))
                return result_code(run)
    except KeyboardInterrupt:  # a second signal, or one before the run existed
        if run is None:
            return exit_codes.INTERRUPTED
    finally:
        stop.close()
    # Interrupted: handled here, in plain code (a further Ctrl-C now ends the command: exit 130).
    return handle_interrupt(run, registry, args.cancel_on_interrupt, args.grace)


def save_spec_of(run: RunRecord, args) -> Optional[int]:
    """--save-spec after a launch: the spec the backend submitted (None: done, or nothing to do)."""
    spec_file = get_backend(run.backend).spec_file
    if not (spec_file and getattr(args, "save_spec", None)):
        return None
    from .beaker_flags import save_submitted_spec

    try:
        save_submitted_spec(args, run.run_dir, spec_file)
    except ConfigError as exc:
        for line in exc.lines():
            err(line)
        return exit_codes.LAUNCH
    return None


def launch_headless(cfg, args) -> int:
    from ..core.launch.launcher import launch

    return launch_and_follow(lambda registry: launch(cfg, preset=args.preset, registry=registry,
                                                     warn=lambda warning: err(f"warning: {warning}")), args)
