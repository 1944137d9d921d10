"""Bulk actions on marked runs: cancel (three marked running runs, real processes in their own
sessions: one question, all three get SIGTERM; an unmarked one keeps running) and archive
(hidden from the table, the flag in the registry and `olmo-tui runs --all`)."""

from __future__ import annotations

import json
import subprocess
import time

from cli_helpers import run_cli

from olmo_tui.app.app import OlmoTuiApp
from olmo_tui.app.screens.dialogs import ConfirmDialog
from olmo_tui.app.screens.runs import RunsScreen
from olmo_tui.core.runs.registry import Registry, RunRecord, runs_root
from engine.run_marker import process_start_ticks
from pilot_helpers import wait_for


def running(name: str, index: int):
    proc = subprocess.Popen(["sleep", "300"], start_new_session=True)
    run_dir = runs_root() / name
    run_dir.mkdir(parents=True)
    run = Registry().add(RunRecord(id=name, name=name, backend="local", run_dir=str(run_dir), status="running",
                                   pid=proc.pid, pgid=proc.pid, pid_start=process_start_ticks(proc.pid),
                                   started=time.time(), created=time.time() + index))
    return run, proc


async def test_cancel_of_three_marked_runs_cancels_three(isolated_xdg):
    started = [running(f"bulk{i}", i) for i in range(4)]
    try:
        app = OlmoTuiApp()
        async with app.run_test(size=(150, 36)) as pilot:
            await pilot.pause()
            app.action_show_runs()
            await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen) and len(app.screen.runs) == 4)
            screen = app.screen
            for run, _ in started[:3]:
                screen.select(run.id)
                await pilot.press("space")
            await pilot.press("c")
            await wait_for(pilot, lambda: isinstance(app.screen, ConfirmDialog))
            assert "Cancel 3 marked runs" in app.screen.question
            await pilot.press("y")
            await wait_for(pilot, lambda: all(proc.poll() is not None for _, proc in started[:3]), timeout=30)
        assert [proc.poll() for _, proc in started[:3]] == [-15, -15, -15]  # SIGTERM, each of them
        assert started[3][1].poll() is None  # the unmarked run was left alone
        assert all(Registry().get(run.id).cancel_requested for run, _ in started[:3])
        assert Registry().get(started[3][0].id).cancel_requested is None

        # a: the marked runs are archived (hidden); the CLI sees the flag and lists them with --all.
        app = OlmoTuiApp()
        async with app.run_test(size=(150, 36)) as pilot:
            await pilot.pause()
            app.action_show_runs()
            await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen) and len(app.screen.runs) == 4)
            screen = app.screen
            for run, _ in started[1:3]:
                screen.select(run.id)
                await pilot.press("space")
            await pilot.press("a")
            await wait_for(pilot, lambda: [r.id for r in screen.visible_runs()] == ["bulk3", "bulk0"])
        assert [Registry().get(f"bulk{i}").archived for i in range(4)] == [False, True, True, False]
        listed = json.loads(run_cli("runs", "--json", "--all").stdout)
        assert {r["id"]: r["archived"] for r in listed} == {"bulk0": False, "bulk1": True, "bulk2": True, "bulk3": False}
    finally:
        for _, proc in started:
            proc.kill()
            proc.wait()
