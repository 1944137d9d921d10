"""The local launcher with real torchrun and real processes. The job is a stand-in module
(tests/launcher_stub/stub_engine.py) that follows the engine contract in a few tenths of a
second; tests/cli/test_headless_run.py and tests/app/test_runs_e2e.py use the real engine."""

import json
import os
import signal
import threading
import time
from pathlib import Path

import pytest

from engine.config import resolve
from olmo_tui.core.launch import launcher, run_manager
from olmo_tui.core.backends.base import RunStatus, get_backend, set_backend
from olmo_tui.core.backends.local import LocalBackend, process_start_ticks
from olmo_tui.core.runs.registry import Registry
from olmo_tui.core.runs.tailing import wait_for

STUB_DIR = Path(__file__).resolve().parents[2] / "launcher_stub"


@pytest.fixture
def stub(monkeypatch):
    monkeypatch.setenv("PYTHONPATH", str(STUB_DIR))
    set_backend("local", LocalBackend(engine_module="stub_engine"))
    yield
    set_backend("local", None)


def launch(monkeypatch, **env):
    for key, value in env.items():
        monkeypatch.setenv(key, str(value))
    return launcher.launch(resolve(preset="tiny-cpu"), preset="tiny-cpu")


def finish(run, timeout=60):
    reg = Registry()
    assert wait_for(lambda: run_manager.refresh_run(reg.get(run.id), reg).terminal, timeout), reg.get(run.id)
    return reg.get(run.id)


def test_success_records_exit_and_metrics(stub, monkeypatch):
    run = launch(monkeypatch, STUB_STEPS=10)
    assert run.status == RunStatus.RUNNING and run.pid and run.argv[:3] == [os.sys.executable, "-m",
                                                                              "torch.distributed.run"]
    assert os.getsid(run.pid) != os.getsid(0)  # detached: its own session, survives our terminal
    run = finish(run)
    assert (run.status, run.exit_code, run.latest_step, run.total_steps) == ("succeeded", 0, 10, 10)
    assert run.ended >= run.started >= run.created
    run_dir = Path(run.run_dir)
    exit_record = json.loads((run_dir / "exit.json").read_text())
    assert exit_record["exit_code"] == 0 and exit_record["ended"] == run.ended
    assert "training finished" in (run_dir / "stdout.log").read_text()
    launch_record = json.loads((run_dir / "launch.json").read_text())
    assert launch_record["argv"] == run.argv and launch_record["backend"] == "local"
    assert (run_dir / "config.toml").exists()


def test_job_failure_and_user_error_codes(stub, monkeypatch):
    failing = launch(monkeypatch, STUB_FAIL_AT=3)
    monkeypatch.delenv("STUB_FAIL_AT")
    user_error = launch(monkeypatch, STUB_USER_ERROR=1)
    failing, user_error = finish(failing), finish(user_error)
    assert (failing.status, failing.exit_code) == ("failed", 1)
    assert "loss is not finite" in Path(failing.run_dir, "stdout.log").read_text()
    # Rank 0's own code, not torchrun's blanket 1.
    assert (user_error.status, user_error.exit_code) == ("failed", 2)
    assert "dataset.paths" in user_error.message and "loss is not finite" in failing.message


def test_cancel_is_graceful_then_resume_continues(stub, monkeypatch):
    run = launch(monkeypatch, STUB_STEPS=400, STUB_STEP_S=0.05)
    assert wait_for(lambda: (Path(run.run_dir) / "metrics.jsonl").exists(), 30)
    run = run_manager.cancel_run(run, grace_s=20, wait_s=30)
    assert (run.status, run.exit_code) == ("cancelled", 143)
    ckpt = run_manager.latest_checkpoint(run)
    assert ckpt is not None and ckpt.name.startswith("step")
    stopped_at = int(ckpt.name[4:])
    monkeypatch.setenv("STUB_STEPS", str(stopped_at + 3))
    child = launcher.relaunch(run, resume=True)
    child = finish(child)
    assert child.parent_id == run.id and child.relation == "resume" and child.status == "succeeded"
    assert f"resuming from step {stopped_at}" in Path(child.run_dir, "stdout.log").read_text()


def test_sigkill_after_grace_when_the_job_ignores_sigterm(stub, monkeypatch):
    run = launch(monkeypatch, STUB_STEPS=10_000, STUB_IGNORE_SIGTERM=1)
    assert wait_for(lambda: (Path(run.run_dir) / "metrics.jsonl").exists(), 30)
    start = time.monotonic()
    run = run_manager.cancel_run(run, grace_s=1.0, wait_s=30)
    assert run.status == "cancelled" and run.exit_code == 137  # 128 + SIGKILL
    assert time.monotonic() - start < 15
    assert "SIGKILL" in Path(run.run_dir, "stdout.log").read_text()


def test_vanished_process_is_lost(stub, monkeypatch):
    run = launch(monkeypatch, STUB_STEPS=10_000)
    assert wait_for(lambda: (Path(run.run_dir) / "metrics.jsonl").exists(), 30)
    from olmo_tui.core.backends.local_wrapper import descendants_of

    family = descendants_of(run.pid)
    os.kill(run.pid, signal.SIGKILL)  # the wrapper dies without writing exit.json
    for pid in family:
        os.kill(pid, signal.SIGKILL)
    assert wait_for(lambda: all(process_start_ticks(pid) is None for pid in [run.pid, *family]), 10)
    run = run_manager.refresh_run(run)
    assert run.status == "lost" and "ended without recording an exit code" in run.message and run.exit_code is None


def test_secrets_reach_the_job_by_environment_only(stub, monkeypatch, isolated_xdg):
    secret = "s3cr3t-value-do-not-log-1234"
    monkeypatch.setenv("STUB_PRINT_ENV", "MY_")
    run = launcher.launch(resolve(preset="tiny-cpu"), preset="tiny-cpu", secrets={"MY_TOKEN": secret})
    run = finish(run)
    log = Path(run.run_dir, "stdout.log").read_text()
    assert "MY_TOKEN" in log  # the job saw it
    for path in [*Path(run.run_dir).rglob("*"), *Path(isolated_xdg).rglob("*")]:
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), path


def test_follow_logs_streams_until_the_end(stub, monkeypatch):
    run = launch(monkeypatch, STUB_STEPS=15)
    lines = list(get_backend("local").follow_logs(run, threading.Event()))
    steps = [line for line in lines if line.startswith("[metrics] ")]
    assert len(steps) == 15 and lines[-1] == "training finished"


def test_launch_error_leaves_nothing_behind(monkeypatch, isolated_xdg):
    set_backend("local", LocalBackend(python="/nonexistent/python"))
    try:
        with pytest.raises(Exception):
            launcher.launch(resolve(preset="tiny-cpu"), preset="tiny-cpu")
    finally:
        set_backend("local", None)
    assert Registry().count() == 0
    runs = Path(os.environ["OLMO_TUI_RUNS_DIR"])
    assert not runs.exists() or not any(runs.iterdir())
