"""What the runs screen and a run's monitor both do to a run: relaunch in the editor, resume,
cancel, and start a run in a worker then open its monitor (through the app's navigation).

Kept apart from both screens so neither imports the other for these.
"""

from __future__ import annotations

from typing import Callable, Optional, Sequence

from textual.screen import Screen

from engine.errors import UserError
from olmo_tui.core.launch import run_manager
from olmo_tui.core.backends.base import BackendError, sees_local_files
from olmo_tui.core.launch.launcher import relaunch
from olmo_tui.core.runs.registry import Registry, RunRecord

from .dialogs import ConfirmDialog

CANCEL_GRACE_S = 60.0


def open_relaunch_editor(app, run: RunRecord) -> None:
    """The editor prefilled with the run's resolved config; launching records the parent."""
    try:
        cfg = run_manager.run_config(run)
    except Exception as exc:  # a missing or unreadable config.toml: say so, keep the app
        app.notify(f"cannot relaunch {run.id}: {exc}", severity="error")
        return
    app.open_editor(cfg, None, parent_run_id=run.id)


def resume_run(screen: Screen, run: RunRecord) -> None:
    local = sees_local_files(run.backend)
    checkpoint = run_manager.latest_checkpoint(run) if local else None
    if local and checkpoint is None:
        screen.notify(f"{run.id} has no checkpoint to resume from", severity="warning")
        return
    where = f" from {checkpoint.name}" if checkpoint else ""

    def answered(yes: Optional[bool]) -> None:
        if yes:
            start_in_app(screen.app, lambda registry: relaunch(run, resume=True, registry=registry))

    screen.app.push_screen(ConfirmDialog(f"Resume {run.id}{where} as a new run?"), answered)


def confirm_cancel(screen: Screen, *runs: RunRecord) -> None:
    """One question, then each run that is still active is cancelled (several: marked runs)."""
    active = [run for run in runs if not run.terminal]
    if not active:
        screen.notify(f"{runs[0].id} already ended ({runs[0].status})" if len(runs) == 1
                      else f"the {len(runs)} marked runs have all ended")
        return

    def answered(yes: Optional[bool]) -> None:
        if yes:
            for run in active:
                cancel_in_background(screen, run)

    what = active[0].id if len(active) == 1 else f"{len(active)} marked runs\n" + "\n".join(r.id for r in active)
    screen.app.push_screen(ConfirmDialog(
        f"Cancel {what}?\nSIGTERM now (the engine writes a final checkpoint), SIGKILL after "
        f"{CANCEL_GRACE_S:g} s."), answered)


def relaunch_marked(screen: Screen, runs: Sequence[RunRecord]) -> None:
    """One question, then each marked run relaunched unchanged as a child run (its own config,
    hook and extensions: the one launch path), in a worker; the runs table shows them."""
    app = screen.app

    def work_() -> None:
        registry, started, failed = Registry(), [], []
        for run in runs:
            try:
                started.append(relaunch(run, resume=False, registry=registry).id)
            except Exception as exc:  # UserError, ConfigError, BackendError: name it, go on
                failed.append(f"{run.id}: {exc}")
        if started:
            app.call_from_thread(app.notify, f"relaunched {len(started)} run(s): " + ", ".join(started))
        for line in failed:
            app.call_from_thread(app.notify, f"cannot relaunch {line}", severity="error", timeout=10)

    def answered(yes: Optional[bool]) -> None:
        if yes:
            app.run_worker(work_, thread=True, group="relaunch", exit_on_error=False)

    screen.app.push_screen(ConfirmDialog(
        f"Relaunch {len(runs)} marked runs, each with its own config, as new child runs?\n"
        + "\n".join(run.id for run in runs)), answered)


def cancel_in_background(screen: Screen, run: RunRecord) -> None:
    app = screen.app

    def work_() -> None:
        try:
            run_manager.cancel_run(run, grace_s=CANCEL_GRACE_S)
        except BackendError as exc:
            app.call_from_thread(app.notify, str(exc), severity="error")
            return
        app.call_from_thread(app.notify, f"stopping {run.id}")

    app.run_worker(work_, thread=True, group="cancel", exit_on_error=False)


def start_in_app(app, start: Callable[[Registry], RunRecord]) -> None:
    """Launch in a thread worker (torchrun takes a moment), then open the new run's monitor."""
    registry = Registry()

    def work_() -> None:
        try:
            run = start(registry)
        except UserError as exc:  # the pre-flight's one line: nothing was created
            app.call_from_thread(app.notify, f"cannot launch: {exc}", severity="error", timeout=10)
            return
        except Exception as exc:  # BackendError, OSError, ConfigError: show it, keep the app
            app.call_from_thread(app.notify, f"launch failed: {exc}", severity="error", timeout=10)
            return
        app.call_from_thread(app.open_monitor, run, registry)

    app.run_worker(work_, thread=True, group="launch", exit_on_error=False)
