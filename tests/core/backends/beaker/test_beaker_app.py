"""The real app (Pilot) with a Beaker run: the monitor shows the job's log, metrics and URL;
with Beaker down it shows the reason within the time limit, keys still work, and the registry
keeps the run as it was."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
from beaker_fixtures import beaker_env, fake_beaker  # noqa: F401  (fixtures)

from engine.config import resolve
from olmo_tui.app.app import OlmoTuiApp
from olmo_tui.app.screens.monitor import MonitorScreen
from olmo_tui.app.screens.runs import RunsScreen
from olmo_tui.app.widgets.log_panel import LogPanel
from olmo_tui.app.widgets.throughput import ThroughputPanel
from olmo_tui.core.backends.base import RunStatus, set_backend
from olmo_tui.core.backends.beaker import BeakerBackend
from olmo_tui.core.backends.beaker.client import BeakerClient
from olmo_tui.core.runs.registry import Registry
from olmo_tui.core.launch.run_manager import refresh_run
from olmo_tui.core.launch.launcher import launch as start_run

pytestmark = pytest.mark.timeout(90)
LIMIT_S = 1.5


@pytest.fixture
def beaker_run(beaker_env):  # noqa: F811
    backend = BeakerBackend(client=BeakerClient(timeout_s=LIMIT_S), refresh_timeout_s=LIMIT_S,
                            launch_timeout_s=LIMIT_S, poll_s=0.05, retry_s=0.5)
    set_backend("beaker", backend)
    registry = Registry()
    cfg = resolve(preset="tiny-cpu", overrides=["--launch.backend=beaker", "--launch.beaker.code_in_image"])
    run = start_run(cfg, preset="tiny-cpu", registry=registry)
    state = beaker_env.state
    state.start_job(run.workload_id)
    state.log(run.workload_id, "[olmo-tui] node 0 of 1",
              '[metrics] {"step": 3, "time": 1.0, "total_steps": 10, "loss": 4.5, "tps": 900}')
    yield refresh_run(run, registry), registry
    set_backend("beaker", None)
    backend.client.close()


async def wait_until(pilot, predicate, timeout: float, what: str, settle: bool = True) -> float:
    """Seconds until `predicate()` holds. settle=False polls without Pilot's pause, which also
    waits for the screen's queued messages and renders it: for timing the app's reaction alone."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if predicate():
            return time.monotonic() - start
        if settle:
            await pilot.pause(0.05)
        else:
            await asyncio.sleep(0.01)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def keep_printing(state, workload_id: str, done: threading.Event) -> None:
    count = 0
    while not done.wait(0.2):
        count += 1
        state.log(workload_id, f"heartbeat {count}")


def header_text(screen) -> str:
    return str(screen.query_one("#run-header").render())


async def test_monitor_follows_a_beaker_run_then_survives_beaker_going_down(beaker_run, fake_beaker):  # noqa: F811
    run, registry = beaker_run
    assert run.status == RunStatus.RUNNING
    app = OlmoTuiApp()
    async with app.run_test(size=(140, 40)) as pilot:
        app.push_screen(MonitorScreen(run, registry))
        await pilot.pause()
        monitor = app.screen
        panel = monitor.query_one(LogPanel)
        # A live job keeps printing; the monitor hands lines on to its panels as more arrive.
        printing = threading.Event()
        ticker = threading.Thread(target=keep_printing, args=(fake_beaker.state, run.workload_id, printing))
        ticker.start()
        try:
            await wait_until(pilot, lambda: "[olmo-tui] node 0 of 1" in panel.lines, 10, "the job's log")
            await wait_until(pilot, lambda: monitor.query_one(ThroughputPanel).latest.get("step") == 3, 5, "metrics")
        finally:
            printing.set()
            ticker.join()
        assert run.extra["url"] in header_text(monitor)

        fake_beaker.stop()
        took = await wait_until(pilot, lambda: "did not answer" in header_text(monitor), LIMIT_S + 5,
                                "the unreachable message")
        assert took < LIMIT_S + 5
        # Still responsive: a key press is handled at once while the workers wait on Beaker. The
        # key goes in with simulate_key, not pilot.press: press then also waits (up to 1 s, twice)
        # for the whole process to go CPU-idle, which on a loaded machine measures the load (the
        # back action ran within 10 ms while press took 1.1 s), not the app; and the wait does not
        # settle (render) the next screen either.
        app.simulate_key("escape")
        await wait_until(pilot, lambda: not isinstance(app.screen, MonitorScreen), 1.0, "leaving the monitor",
                         settle=False)
        app.push_screen("runs")
        await pilot.pause()
        assert isinstance(app.screen, RunsScreen)
        await wait_until(pilot, lambda: app.screen.query_one("DataTable").row_count == 1, 5, "the runs table")
    stored = registry.get(run.id)
    assert stored.status == RunStatus.RUNNING and stored.workload_id == run.workload_id
    assert stored.latest_step == 3
