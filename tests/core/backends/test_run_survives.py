"""A run stays under control whatever process dies: the run-dir lock (engine/run_lock.py) held by
the wrapper, torchrun and every rank tells a live run from a dead one, so killing the wrapper
(the pid the registry holds) no longer makes a training run `lost` and uncancellable, and a run
marked lost that is alive is adopted again. Real torchrun and processes; the job is the
contract's stand-in (tests/launcher_stub)."""

from __future__ import annotations

import os
import signal
from pathlib import Path

from cli_helpers import run_cli
from engine import run_lock
from engine.config import resolve
from engine.run_marker import process_start_ticks
from olmo_tui.core.backends.base import RunStatus
from olmo_tui.core.launch import launcher, run_manager
from olmo_tui.core.runs.registry import Registry
from olmo_tui.core.runs.tailing import wait_for

from stub_backend import stub  # noqa: F401  (the fixture)




def start(monkeypatch, **env):
    for key, value in env.items():
        monkeypatch.setenv(key, str(value))
    run = launcher.launch(resolve(preset="tiny-cpu"), preset="tiny-cpu")
    assert wait_for(lambda: (Path(run.run_dir) / "metrics.jsonl").exists(), 60)
    return run


def kill_wrapper(run):
    os.kill(run.pid, signal.SIGKILL)
    assert wait_for(lambda: process_start_ticks(run.pid) is None, 10)


def fresh(run):
    return run_manager.refresh_run(Registry().get(run.id))


def test_a_killed_wrapper_leaves_a_running_run_that_cancel_still_stops(stub, monkeypatch):
    run = start(monkeypatch, STUB_STEPS=100_000, STUB_STEP_S=0.05)
    kill_wrapper(run)
    run = fresh(run)
    assert run.status == RunStatus.RUNNING  # before: lost, while training went on
    holders = run_lock.holders(Path(run.run_dir))
    assert holders and run.pid not in holders  # torchrun and the job hold the run alive
    run = run_manager.cancel_run(run, grace_s=10, wait_s=60)  # before: "already ended (lost)"
    assert (run.status, run.exit_code) == (RunStatus.CANCELLED, 143), run
    assert all(process_start_ticks(pid) is None for pid in holders)  # nothing left running
    assert run_lock.is_alive(Path(run.run_dir)) is False


def test_a_run_whose_wrapper_died_ends_in_its_true_state(stub, monkeypatch):
    run = start(monkeypatch, STUB_STEPS=40, STUB_STEP_S=0.05)
    kill_wrapper(run)
    assert wait_for(lambda: fresh(run).terminal, 60)
    run = fresh(run)
    # The wrapper never wrote exit.json; rank 0's own record says how it ended.
    assert not (Path(run.run_dir) / "exit.json").exists()
    assert (run.status, run.exit_code, run.latest_step) == (RunStatus.SUCCEEDED, 0, 40), run


def test_a_run_marked_lost_that_is_alive_is_adopted_again(stub, monkeypatch):
    run = start(monkeypatch, STUB_STEPS=100_000, STUB_STEP_S=0.05)
    registry = Registry()
    registry.update(run.id, status=RunStatus.LOST, message="the process vanished")  # as the old code did
    run = run_manager.refresh_all(registry) and registry.get(run.id)
    assert run.status == RunStatus.RUNNING and "adopted again" in run.message
    registry.update(run.id, status=RunStatus.LOST)
    # before: "already ended (lost); nothing to cancel", exit 0, while training went on
    result = run_cli("cancel", run.id, "--grace", "10", timeout=120)
    assert result.returncode == 0 and "nothing to cancel" not in result.stderr, result.stderr
    assert registry.get(run.id).status == RunStatus.CANCELLED
    assert run_lock.is_alive(Path(run.run_dir)) is False
