"""Nothing launched goes missing: a launch cut off half-way is recorded on the next look (no
invisible run dir, no uncancellable `starting`), and a registry that is missing, empty or
corrupt is rebuilt from the run dirs (the corrupt file kept aside, a true hint). Real SQLite,
real torchrun and processes (the job is tests/launcher_stub's stand-in)."""

from __future__ import annotations

import gc
import json
import os
from pathlib import Path

import pytest

from cli_helpers import run_cli
from engine import run_lock
from engine.config import resolve, to_toml
from engine.run_marker import process_start_ticks
from olmo_tui.core.backends.base import RunStatus, set_backend
from olmo_tui.core.backends.local import LocalBackend
from olmo_tui.core.launch import launcher, run_manager
from olmo_tui.core.runs.registry import Registry, RunRecord, new_run_id, runs_root
from olmo_tui.core.runs.tailing import wait_for

from stub_backend import stub  # noqa: F401  (the fixture)




def half_made_dir(with_config: bool = True) -> Path:
    """What a launcher killed after its mkdir (and config.toml) leaves: no record."""
    run_dir = runs_root() / new_run_id("tiny-cpu")
    run_dir.mkdir(parents=True)
    run_lock.release(run_lock.hold(run_dir))  # taken right after the mkdir; let go by its death
    if with_config:
        (run_dir / "config.toml").write_text(to_toml(resolve(preset="tiny-cpu")))
    return run_dir


def listed() -> dict:
    return {run.id: run for run in run_manager.refresh_all(Registry())}


def test_a_launch_killed_before_its_record_shows_as_interrupted(isolated_xdg):
    run_dir = half_made_dir()
    run = listed()[run_dir.name]  # before: a dir no command listed
    assert run.status == RunStatus.FAILED and run.name == "tiny-cpu"
    assert run.message == "the launch was interrupted before the run was recorded (nothing ran); launch it again"


def test_a_launch_in_progress_is_left_alone(isolated_xdg):
    run_dir = half_made_dir()
    fd = run_lock.hold(run_dir)  # the launcher holds the lock from mkdir until the run holds its own
    try:
        assert run_dir.name not in listed()
    finally:
        run_lock.release(fd)
    assert listed()[run_dir.name].status == RunStatus.FAILED


def test_a_record_left_starting_by_a_dead_launcher_is_settled(isolated_xdg):
    run_dir = half_made_dir()
    dead = {"pid": 2**22 + 1, "pid_start": 1}  # no such process
    Registry().add(RunRecord(id=run_dir.name, name="tiny-cpu", backend="local", run_dir=str(run_dir),
                             status=RunStatus.STARTING, extra={"launcher": dead}))
    run = listed()[run_dir.name]  # before: `starting` for good, and cancel could not stop anything
    assert run.status == RunStatus.FAILED and "interrupted before the run started" in run.message


def test_a_run_started_by_a_launcher_that_died_before_recording_it_is_adopted(stub, isolated_xdg):
    """The wrapper started (the run trains) but the launcher died before it recorded the pid."""
    cfg = resolve(preset="tiny-cpu")
    run_dir = half_made_dir()
    dead = {"pid": 2**22 + 1, "pid_start": 1}
    run = RunRecord(id=run_dir.name, name="tiny-cpu", backend="local", run_dir=str(run_dir),
                    status=RunStatus.STARTING, extra={"launcher": dead})
    Registry().add(run)
    os.environ["STUB_STEPS"] = "100000"
    try:
        LocalBackend(engine_module="stub_engine").launch(run, cfg, {})  # and then nothing recorded it
    finally:
        del os.environ["STUB_STEPS"]
    run = listed()[run.id]
    assert run.status == RunStatus.RUNNING and "adopted again" in run.message
    run = run_manager.cancel_run(run, grace_s=10, wait_s=60)
    assert run.status == RunStatus.CANCELLED


def _launched(stub_env: dict) -> list:
    runs = []
    for steps in ("5", "100000"):
        os.environ.update(stub_env, STUB_STEPS=steps)
        runs.append(launcher.launch(resolve(preset="tiny-cpu"), preset="tiny-cpu"))
    for key in [*stub_env, "STUB_STEPS"]:
        os.environ.pop(key, None)
    assert wait_for(lambda: (Path(runs[1].run_dir) / "metrics.jsonl").exists(), 60)
    assert wait_for(lambda: (Path(runs[0].run_dir) / "exit.json").exists(), 60)
    return runs


@pytest.mark.parametrize("damage", ["missing", "empty", "half"])
def test_a_lost_registry_is_rebuilt_from_the_run_dirs(damage, stub, isolated_xdg):
    finished, running = _launched({"STUB_STEP_S": "0.05"})
    db = Registry().path
    size = db.stat().st_size
    gc.collect()  # no connection of this process stays open on the file being damaged
    for suffix in ("-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    if damage == "missing":
        db.unlink()
    elif damage == "empty":
        db.write_bytes(b"")  # before: silently recreated, every launched run gone
    else:
        with open(db, "r+b") as handle:  # before: refused with "set XDG_STATE_HOME to a writable folder"
            handle.truncate(size // 2)
            handle.seek(0)
            handle.write(b"garbage" * 20)
    result = run_cli("runs", "--json")
    assert result.returncode == 0, result.stderr
    rows = {row["id"]: row for row in json.loads(result.stdout)}
    assert rows[finished.id]["status"] == "succeeded" and rows[finished.id]["preset"] == "tiny-cpu"
    assert rows[running.id]["status"] == "running" and rows[running.id]["name"] == "tiny-cpu"
    if damage == "half":
        (aside,) = db.parent.glob("runs.db.corrupt-*")
        assert result.stderr.startswith(f"warning: the run registry {db} was damaged (")
        assert f"kept as {aside.name}; its runs are recorded again from their run dirs" in result.stderr
    cancelled = run_cli("cancel", running.id, "--grace", "20", timeout=120)
    assert cancelled.returncode == 0, cancelled.stderr
    assert Registry().get(running.id).status == RunStatus.CANCELLED
    assert wait_for(lambda: process_start_ticks(running.pid) is None, 30)


def test_a_look_at_the_runs_while_a_queued_run_starts_leaves_it_starting(stub, isolated_xdg):
    """A sweep worker starting a queued run holds its lock and names itself, as a launcher does:
    a look meanwhile (another window, `olmo-tui runs`) used to settle it as interrupted."""
    from olmo_tui.core.launch.prepare import preflight, prepare
    from olmo_tui.core.launch.sweep_queue import start_queued

    seen = []

    class Peeking(LocalBackend):
        def launch(self, run, cfg, secrets):
            seen.append(listed()[run.id].status)  # someone else looks at the runs mid-start
            return super().launch(run, cfg, secrets)

    set_backend("local", Peeking(engine_module="stub_engine"))
    registry = Registry()
    run = prepare(preflight(resolve(preset="tiny-cpu")), status=RunStatus.QUEUED, sweep="s", sweep_index=0)
    registry.add(run)
    os.environ["STUB_STEPS"] = "5"
    try:
        run = start_queued(run, registry)
    finally:
        del os.environ["STUB_STEPS"]
    assert seen == [RunStatus.STARTING] and run.status == RunStatus.RUNNING
    assert wait_for(lambda: run_manager.refresh_run(registry.get(run.id), registry).status == RunStatus.SUCCEEDED, 60)


def test_a_forgotten_run_stays_forgotten(isolated_xdg):
    """Forget drops the record; the next look (every second in the runs table) must not record
    the dir again, with its files kept, or while they are being deleted (it came back: the
    runs-table journey's forget waited 120 s in CI)."""
    run_dir = half_made_dir()
    run = listed()[run_dir.name]
    run_manager.forget_run(run, delete_files=False)
    assert run_dir.is_dir() and run_dir.name not in listed()
    assert Registry().get(run_dir.name) is None
