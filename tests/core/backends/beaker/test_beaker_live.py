"""Against the real Beaker: skipped unless BEAKER_TOKEN is set.

Read-only by default (who am I, can the workspace be resolved, the bounded client works on a
real TLS channel). With OLMO_TUI_BEAKER_LIVE_LAUNCH=1, BEAKER_WORKSPACE and OLMO_TUI_BEAKER_IMAGE
also set, it submits a CPU-only tiny-cpu job from the image and cancels it at once.

It runs in a subprocess: the other Beaker tests point gRPC's trust roots at their self-signed
certificate for the whole test process, which the real service's certificate would fail.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from beaker_fixtures import REPO, beaker_env, fake_beaker  # noqa: F401  (fixtures)


pytestmark = pytest.mark.timeout(300)


def live(test):
    test = pytest.mark.live_beaker(test)
    return pytest.mark.skipif(not os.environ.get("BEAKER_TOKEN"), reason="live Beaker test: set BEAKER_TOKEN")(test)

SCRIPT = r"""
import os, sys, time, dataclasses
from engine.config import resolve
from olmo_tui.core.backends.beaker import BeakerBackend
from olmo_tui.core.runs.registry import RunRecord, new_run_id

backend = BeakerBackend()
name = backend.client.call(lambda b: b.user.get().name, "reading the user")
print("user", name)
workspace = os.environ.get("BEAKER_WORKSPACE")
if workspace:
    ws = backend.client.call(lambda b: b.workspace.get(workspace).id, "resolving the workspace")
    print("workspace", ws)
if os.environ.get("OLMO_TUI_BEAKER_LIVE_LAUNCH") == "1":
    cfg = resolve(preset="tiny-cpu", overrides=[
        "--launch.backend=beaker", "--launch.beaker.code_in_image", "--launch.beaker.gpus=0",
        f"--launch.beaker.workspace={workspace}", f"--launch.beaker.image={os.environ['OLMO_TUI_BEAKER_IMAGE']}",
        "--launch.beaker.priority=low", "--launch.beaker.description=olmo-tui live test (cancelled at once)"])
    run_id = new_run_id("olmo-tui-live-test")
    run = RunRecord(id=run_id, name="olmo-tui-live-test", backend="beaker", run_dir=sys.argv[1])
    run = backend.launch(run, cfg, {})
    print("launched", run.workload_id, run.extra["url"])
    run = backend.cancel(run, grace_s=0)
    for _ in range(60):
        if run.terminal:
            break
        time.sleep(2)
        run = backend.refresh(run)
    print("final", run.status)
    assert run.status == "cancelled", run
"""


def run_script(tmp_path, env):
    out = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path / "run")], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=280)
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.startswith("user ")
    return out.stdout


@live
def test_live_beaker(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("GRPC_DEFAULT_SSL_ROOTS_FILE_PATH", "BEAKER_CONFIG")}
    run_script(tmp_path, env)


def test_the_live_script_itself_against_the_fake(beaker_env, tmp_path):  # noqa: F811
    """So that the live test is known to work where it cannot run (no token here)."""
    env = {**os.environ, "BEAKER_WORKSPACE": "ai2/olmo-tui-tests", "OLMO_TUI_BEAKER_LIVE_LAUNCH": "1",
           "OLMO_TUI_BEAKER_IMAGE": "team/olmo-tui", "OLMO_TUI_BEAKER_TIMEOUT": "5"}
    out = run_script(tmp_path, env)
    assert "user tester" in out and "workspace ws-1" in out and "final cancelled" in out
    assert beaker_env.state.cancelled_ids == [beaker_env.state.only_experiment().id]
