"""Beaker down: every call gives up within its time limit with one clear line, the registry
keeps what it knew, and the headless command exits 3 without a traceback."""

from __future__ import annotations

import threading
import time

import pytest
from beaker_fixtures import run_cli, beaker_env, fake_beaker  # noqa: F401  (fixtures)

from engine.config import resolve
from olmo_tui.core.backends.base import BackendError, RunStatus, set_backend
from olmo_tui.core.backends.beaker import BeakerBackend
from olmo_tui.core.backends.beaker.client import BeakerClient
from olmo_tui.core.runs.registry import Registry
from olmo_tui.core.launch.run_manager import refresh_run
from olmo_tui.core.launch.launcher import launch as start_run

pytestmark = pytest.mark.timeout(60)
LIMIT_S = 1.5


@pytest.fixture
def backend(beaker_env):  # noqa: F811
    b = BeakerBackend(client=BeakerClient(timeout_s=LIMIT_S), refresh_timeout_s=LIMIT_S,
                      launch_timeout_s=LIMIT_S, poll_s=0.05, retry_s=0.2, min_refresh_s=0)
    set_backend("beaker", b)
    yield b
    set_backend("beaker", None)
    b.client.close()


def cfg():
    return resolve(preset="tiny-cpu", overrides=["--launch.backend=beaker", "--launch.beaker.code_in_image"])


def test_refresh_follow_and_launch_with_beaker_down(backend, fake_beaker):  # noqa: F811
    registry = Registry()
    run = start_run(cfg(), registry=registry)
    fake_beaker.state.start_job(run.workload_id)
    run = refresh_run(run, registry)
    assert run.status == RunStatus.RUNNING
    rows_before = {r.id: r for r in registry.all()}
    fake_beaker.stop()

    # refresh: bounded, status kept, the reason shown
    t0 = time.monotonic()
    after = refresh_run(run, registry)
    assert time.monotonic() - t0 < LIMIT_S + 2
    assert after.status == RunStatus.RUNNING and "did not answer within" in after.message
    stored = registry.get(run.id)
    assert stored.status == RunStatus.RUNNING and stored.workload_id == run.workload_id
    # the next looks (the runs table refreshes every second) answer at once for a while
    t0 = time.monotonic()
    again = refresh_run(after, registry)
    assert time.monotonic() - t0 < 0.5 and "did not answer" in again.message

    # follow: the error line arrives within the limit and the follower stops when asked
    stop, lines = threading.Event(), []
    t0 = time.monotonic()
    follower = threading.Thread(target=lambda: lines.extend(backend.follow_logs(after, stop)), daemon=True)
    follower.start()
    while not any("did not answer" in line for line in list(lines)):
        assert time.monotonic() - t0 < LIMIT_S + 3, lines
        time.sleep(0.05)
    stop.set()
    follower.join(2)
    assert not follower.is_alive()

    # launch: BackendError within the limit, and nothing of the failed launch is left behind
    t0 = time.monotonic()
    with pytest.raises(BackendError, match="did not answer"):
        start_run(cfg(), registry=registry)
    assert time.monotonic() - t0 < LIMIT_S + 2
    assert {r.id for r in registry.all()} == set(rows_before)


def test_headless_launch_with_beaker_down_exits_3(beaker_env, fake_beaker):  # noqa: F811
    fake_beaker.stop()
    t0 = time.monotonic()
    out = run_cli("--preset", "tiny-cpu", "--beaker", "--launch.beaker.code_in_image",
                  env={"OLMO_TUI_BEAKER_TIMEOUT": "0.5"}, timeout=40)
    assert time.monotonic() - t0 < 30
    assert out.returncode == 3, out.stderr
    assert "error: launch failed: Beaker" in out.stderr and "did not answer within 1.5 s" in out.stderr
    assert "Traceback" not in out.stderr
    assert Registry().count() == 0


def test_headless_without_beaker_config_is_one_clear_line(tmp_path):
    out = run_cli("--preset", "tiny-cpu", "--beaker", "--launch.beaker.code_in_image",
                  env={"BEAKER_CONFIG": str(tmp_path / "missing.yml"), "BEAKER_TOKEN": ""}, timeout=40)
    assert out.returncode == 3 and "Traceback" not in out.stderr
    assert "Beaker is not configured" in out.stderr
