"""The run manager end to end: the real app (Pilot), the real engine under torchrun, real
processes that outlive the app. Small overrides keep each run to a few seconds of training."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from olmo_tui.app.app import OlmoTuiApp
from olmo_tui.app.screens.monitor import MonitorScreen
from olmo_tui.app.screens.runs import LaunchDialog, RunsScreen
from olmo_tui.app.widgets.log_panel import LogPanel
from olmo_tui.app.widgets.throughput import ThroughputPanel
from olmo_tui.core.config import configdiff
from olmo_tui.core.launch import launcher, run_manager
from olmo_tui.core.backends.local import process_start_ticks
from olmo_tui.core.runs.registry import Registry
from olmo_tui.core.runs.tailing import read_metrics

from pilot_helpers import open_editor, type_into

FAST = """
extends = "tiny-cpu"
description = "tiny-cpu, shortened for tests"
[data_loader]
global_batch_size = {batch}
[train_module]
rank_microbatch_size = {batch}
[trainer]
metrics_collect_interval = 1
max_duration = {{ value = {steps}, unit = "steps" }}
[trainer.callbacks.checkpointer]
save_interval = 1000
ephemeral_save_interval = 500
[trainer.callbacks.lm_evaluator]
enabled = false
"""


def user_preset(isolated_xdg, name: str, steps: int, batch: int = 512, extra: str = "") -> str:
    folder = isolated_xdg / "xdg_config_home" / "olmo-tui" / "presets"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.toml").write_text(FAST.format(steps=steps, batch=batch) + extra)
    return name


def start(preset: str, *overrides: str):
    from engine.config import resolve

    return launcher.launch(resolve(preset=preset, overrides=list(overrides)), preset=preset)


async def open_monitor(pilot, run_id: str) -> MonitorScreen:
    """Through the runs screen, as a user would: the table, the row, enter."""
    app = pilot.app
    if not isinstance(app.screen, RunsScreen):
        app.action_show_runs()
    await wait_until(pilot, lambda: isinstance(app.screen, RunsScreen)
                     and any(r.id == run_id for r in app.screen.visible_runs()), 10, "the run in the table")
    app.screen.select(run_id)
    await pilot.press("enter")
    await wait_until(pilot, lambda: isinstance(app.screen, MonitorScreen) and app.screen.run.id == run_id, 10,
                     "the monitor")
    return app.screen


def stop_quietly(run_id: str) -> None:
    run = Registry().get(run_id)
    if run and not run.terminal:
        run_manager.cancel_run(run, grace_s=20, wait_s=40)


async def wait_until(pilot, predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        await pilot.pause(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def monitor_of(app) -> MonitorScreen:
    assert isinstance(app.screen, MonitorScreen), app.screen
    return app.screen


def latest_step(monitor: MonitorScreen):
    return monitor.query_one(ThroughputPanel).latest.get("step")


STEPS = 30


@pytest.mark.slow
async def test_launch_from_editor_quit_reopen_reattach(isolated_xdg):
    preset = user_preset(isolated_xdg, "tiny-e2e", steps=STEPS, batch=256)
    app = OlmoTuiApp()
    async with app.run_test(size=(140, 40)) as pilot:
        editor = await open_editor(pilot, preset)
        await pilot.press("ctrl+l")
        await wait_until(pilot, lambda: isinstance(app.screen, LaunchDialog), 5, "the launch dialog")
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, MonitorScreen), 30, "the monitor")
        monitor = monitor_of(app)
        await wait_until(pilot, lambda: (latest_step(monitor) or 0) >= 2, 240, "the first steps")
        first = latest_step(monitor)
        await wait_until(pilot, lambda: latest_step(monitor) > first, 120, "steps advancing")
        run = monitor.run
        assert "torch.distributed.run" in str(monitor.query_one("#run-header").render())
        quitting = time.time()
    # The app is gone; the run is not: still alive, or it finished after the app had quit.
    if process_start_ticks(run.pid) is None:
        ended = json.loads(Path(run.run_dir, "exit.json").read_text())["ended"]
        assert ended > quitting, "the run died with the app"

    app = OlmoTuiApp()
    async with app.run_test(size=(140, 40)) as pilot:
        await pilot.pause()
        app.action_show_runs()
        await wait_until(pilot, lambda: isinstance(app.screen, RunsScreen) and app.screen.runs, 10, "the runs table")
        monitor = await open_monitor(pilot, run.id)
        await wait_until(pilot, lambda: monitor.run.status == "succeeded", 300, "the run to succeed")
        await wait_until(pilot, lambda: latest_step(monitor) == STEPS, 10, "the last step in the panel")
        header = str(monitor.query_one("#run-header").render())
        assert "succeeded" in header and "exit code 0" in header
        panel = monitor.query_one(LogPanel)
        await wait_until(pilot, lambda: any(f"finished at step {STEPS}" in line for line in panel.lines), 5, "the log end")
    final = Registry().get(run.id)
    assert (final.status, final.exit_code, final.latest_step) == ("succeeded", 0, STEPS)


async def test_failing_job_shows_the_error_and_exit_code(isolated_xdg):
    preset = user_preset(isolated_xdg, "tiny-bad-data", steps=5)
    # An error only the engine can see (the pre-flight refuses a missing data file before launch):
    # a parameter glob checked against the built model.
    run = start(preset, "--train_module.optim.group_overrides=[{params: [nonexistent.*]}]")
    app = OlmoTuiApp()
    async with app.run_test(size=(140, 40)) as pilot:
        monitor = await open_monitor(pilot, run.id)
        await wait_until(pilot, lambda: monitor.run.status == "failed", 240, "the run to fail")
        panel = monitor.query_one(LogPanel)
        await wait_until(pilot, lambda: any("nonexistent" in line for line in panel.log_widget.lines), 5, "the log")
        header = str(monitor.query_one("#run-header").render())
        assert "failed" in header and "exit code 2" in header
        assert "error: train_module.optim.group_overrides[0].params:" in header
        # The error line is highlighted, and `e` jumps to it.
        log = panel.log_widget
        await pilot.press("e")
        await pilot.pause()
        assert log.marked is not None and "group_overrides" in log.lines[log.marked]
        from rich.text import Text

        styled = log.highlighter(Text(log.lines[log.marked]))
        assert any("red" in str(span.style) for span in styled.spans)
    final = Registry().get(run.id)
    assert (final.status, final.exit_code) == ("failed", 2)


@pytest.mark.slow
async def test_cancel_keeps_a_checkpoint_resume_continues_and_relaunch_changes_one_field(isolated_xdg):
    preset = user_preset(isolated_xdg, "tiny-long", steps=5000)
    parent = start(preset)
    children = []
    app = OlmoTuiApp()
    try:
        async with app.run_test(size=(140, 40)) as pilot:
            monitor = await open_monitor(pilot, parent.id)
            await wait_until(pilot, lambda: (latest_step(monitor) or 0) >= 3, 240, "a few steps")
            await pilot.press("c")
            await pilot.pause()
            await pilot.press("y")
            await wait_until(pilot, lambda: monitor.run.status == "cancelled", 60, "the cancel")
            header = str(monitor.query_one("#run-header").render())
            assert "exit code 143" in header and "checkpoint: step" in header  # the name; `i` shows the path
            assert "checkpoints/step" in monitor.details_text()
            checkpoint = run_manager.latest_checkpoint(monitor.run)
            stopped_at = int(checkpoint.name[4:])
            assert stopped_at >= 3

            # R: a child run continues from that checkpoint.
            await pilot.press("escape")
            await wait_until(pilot, lambda: isinstance(app.screen, RunsScreen), 5, "the runs screen")
            app.screen.select(parent.id)
            await pilot.press("R")
            await pilot.pause()
            await pilot.press("y")
            await wait_until(pilot, lambda: isinstance(app.screen, MonitorScreen) and app.screen.run.id != parent.id,
                             30, "the resumed run's monitor")
            resumed = app.screen
            children.append(resumed.run.id)
            await wait_until(pilot, lambda: resumed.query_one(ThroughputPanel).records_seen >= 1, 240, "resumed steps")
            assert resumed.run.parent_id == parent.id and resumed.run.relation == "resume"
            log_text = Path(resumed.run.run_dir, "stdout.log").read_text()
            assert f"resuming from" in log_text and f"(step {stopped_at})" in log_text
            first = read_metrics(Path(resumed.run.run_dir) / "metrics.jsonl")[0]
            assert first["step"] == stopped_at + 1
            stop_quietly(resumed.run.id)

            # r: the editor opens with the run's config; one edited field -> a child differing in it.
            await pilot.press("escape")
            await wait_until(pilot, lambda: isinstance(app.screen, RunsScreen), 5, "the runs screen")
            app.screen.select(parent.id)
            await pilot.press("r")
            await wait_until(pilot, lambda: "relaunch of" in (app.screen.sub_title or ""), 10, "the editor")
            await type_into(pilot, app.screen, "init_seed", "7")
            await pilot.press("ctrl+l")
            await wait_until(pilot, lambda: isinstance(app.screen, LaunchDialog), 5, "the launch dialog")
            await pilot.press("enter")
            await wait_until(pilot, lambda: isinstance(app.screen, MonitorScreen) and app.screen.run.id not in
                             (parent.id, *children), 30, "the relaunched run's monitor")
            relaunched = app.screen.run
            children.append(relaunched.id)
            assert relaunched.parent_id == parent.id and relaunched.relation == "relaunch"
            diff = configdiff.diff(run_manager.run_config(parent), run_manager.run_config(relaunched))
            assert diff == {"init_seed": 7}
    finally:
        for run_id in [*children, parent.id]:
            stop_quietly(run_id)
