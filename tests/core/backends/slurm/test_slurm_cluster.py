"""The SLURM backend against a real slurmctld + two slurmd on this machine (slurm_cluster.py).

To stay inside the time budget every job is submitted at once by one module fixture (the
cluster has room for all of them) and each test then waits for its own:

- reference: tiny-cpu, 1 node x 2 ranks, to the end -> succeeded, metrics in the run dir;
- two_nodes: 2 nodes x 1 rank (c10d rendezvous across the two slurmd) -> succeeded, the same
  losses as the reference (same world size, same data);
- requeue: the reference's config; `scontrol requeue` once a checkpoint exists -> the second
  attempt resumes from the checkpoint and its later losses equal the reference's;
- cancel: a long run; run_manager.cancel_run -> final checkpoint at the last step, cancelled;
- time_limit: a long run with a 1-minute limit and SIGUSR1 40 s before it -> the engine
  writes a checkpoint and stops before SLURM's kill.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from pathlib import Path
from typing import Dict, List

import pytest
from slurm_cluster import slurm_cluster  # noqa: F401  (fixture)

from engine.config import resolve
from olmo_tui.core.launch import launcher, run_manager
from olmo_tui.core.backends.base import RunStatus
from olmo_tui.core.runs.registry import Registry, RunRecord

STEPS = 12
# A smaller tiny-cpu: every step logged, a checkpoint every 3 steps, no evals; one torch
# thread per rank (the setup line) since several jobs share the 2 cores.
FAST = ["--dataset.sequence_length=64", "--train_module.max_sequence_length=64",
        "--data_loader.global_batch_size=512", "--train_module.rank_microbatch_size=256",
        "--trainer.metrics_collect_interval=1", "--trainer.callbacks.lm_evaluator.enabled=false",
        "--trainer.callbacks.checkpointer.save_interval=1000",
        "--trainer.callbacks.checkpointer.ephemeral_save_interval=3",
        "--trainer.cancel_check_interval=2",  # ranks agree on a stop signal every 2 steps
        "--launch.backend=slurm", "--launch.slurm.setup=['export OMP_NUM_THREADS=1']"]
JOB_TIMEOUT_S = 150.0
SECRET = "tok-5e3b9d"  # handed to the reference job as a secret: it must appear in no file


def steps(n: int) -> str:
    return f"--trainer.max_duration={{value: {n}, unit: steps}}"


def wait_for(registry: Registry, run: RunRecord, done, timeout_s: float = JOB_TIMEOUT_S) -> RunRecord:
    deadline = time.monotonic() + timeout_s
    while True:
        run = run_manager.refresh_run(registry.get(run.id), registry)
        if done(run):
            return run
        if time.monotonic() > deadline:
            log = Path(run.run_dir, "stdout.log")
            raise AssertionError(f"{run.id} stuck at {run.status} ({run.extra}):\n"
                                 f"{log.read_text()[-3000:] if log.exists() else '(no log)'}")
        time.sleep(0.5)


def losses(run: RunRecord) -> Dict[int, float]:
    lines = Path(run.run_dir, "metrics.jsonl").read_text().splitlines()
    return {r["step"]: r["loss"] for r in map(json.loads, lines)}


def checkpoint_steps(run: RunRecord) -> List[int]:
    folder = Path(run.run_dir, "checkpoints")
    return sorted(int(p.name[4:]) for p in folder.glob("step*") if p.name[4:].isdigit())


@pytest.fixture(scope="module")
def jobs(slurm_cluster, tmp_path_factory):  # noqa: F811
    shared = tmp_path_factory.mktemp("shared")
    registry = Registry(shared / "runs.db")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("OLMO_TUI_RUNS_DIR", str(shared / "runs"))
        mp.setenv("XDG_CACHE_HOME", str(shared / "cache"))  # one embedded corpus for every job
        base = [*FAST, f"--launch.slurm.shared_paths=[{shared}]"]

        def start(*overrides: str, secrets=None) -> RunRecord:
            cfg = resolve(preset="tiny-cpu", overrides=[*base, *overrides])
            return launcher.launch(cfg, preset="tiny-cpu", registry=registry, secrets=secrets)

        runs = {
            "reference": start(steps(STEPS), "--launch.nproc_per_node=2", secrets={"TEST_TOKEN": SECRET}),
            "requeue": start(steps(STEPS), "--launch.nproc_per_node=2"),
            "two_nodes": start(steps(STEPS), "--launch.slurm.nodes=2"),
            "cancel": start(steps(100_000), "--launch.nproc_per_node=2"),
            "time_limit": start(steps(100_000), "--launch.slurm.time_limit=1",
                                "--launch.slurm.signal_before_limit_s=40"),
        }
        yield registry, runs
        for run in runs.values():  # nothing keeps running past the module
            run = registry.get(run.id)
            if not run.terminal:
                run_manager.cancel_run(run, grace_s=0, registry=registry)


def ended(run: RunRecord) -> bool:
    return run.terminal


# The requeue test acts while its job runs: it comes first (pytest keeps file order).
def test_requeue_resumes_from_the_checkpoint_with_the_same_losses(jobs, slurm_cluster):  # noqa: F811
    registry, runs = jobs
    run = wait_for(registry, runs["requeue"], lambda r: (r.latest_step or 0) >= 4 or r.terminal)
    assert run.status == RunStatus.RUNNING, run.message
    subprocess.run(["scontrol", "requeue", run.workload_id], check=True, timeout=10)
    # A requeued job waits ~2 minutes (its begin time) before SLURM starts it again; an
    # operator may start it at once, as the test does.
    run = wait_for(registry, run, lambda r: r.extra.get("state") == "PENDING", 30)
    assert run.status == RunStatus.QUEUED
    subprocess.run(["scontrol", "update", f"JobId={run.workload_id}", "StartTime=now"], check=True, timeout=10)
    run = wait_for(registry, run, ended)
    assert (run.status, run.exit_code) == (RunStatus.SUCCEEDED, 0), run.message
    assert run.extra["restarts"] == 1
    log = Path(run.run_dir, "stdout.log").read_text()
    assert "attempt 0:" in log and "attempt 1:" in log
    found = re.search(r"resuming from \S+ \(step (\d+)\)", log)
    assert found, log[-3000:]
    resumed_from = int(found.group(1))
    assert 3 <= resumed_from < STEPS
    reference = wait_for(registry, runs["reference"], ended)
    later = {s: v for s, v in losses(run).items() if s > resumed_from}
    assert sorted(later) == list(range(resumed_from + 1, STEPS + 1))
    assert later == pytest.approx({s: losses(reference)[s] for s in later}, rel=1e-6)


def test_two_ranks_on_one_node_succeed_with_metrics_in_the_run_dir(jobs):
    registry, runs = jobs
    run = wait_for(registry, runs["reference"], ended)
    assert (run.status, run.exit_code) == (RunStatus.SUCCEEDED, 0), run.message
    assert sorted(losses(run)) == list(range(1, STEPS + 1))
    assert run.latest_step == STEPS and run.workload_id and run.extra["state"] == "COMPLETED"
    assert run.extra["partition"] == "debug"
    log = Path(run.run_dir, "stdout.log").read_text()
    assert "2 x cpu" in log and f"finished at step {STEPS}" in log
    assert json.loads(Path(run.run_dir, "exit.json").read_text())["exit_code"] == 0
    assert json.loads(Path(run.run_dir, "launch.json").read_text())["secret_env_names"] == ["TEST_TOKEN"]
    for path in Path(run.run_dir).rglob("*"):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path
    assert SECRET not in json.dumps(registry.get(run.id).to_json())


def test_two_nodes_meet_by_rendezvous_and_match_one_node(jobs):
    registry, runs = jobs
    run = wait_for(registry, runs["two_nodes"], ended)
    assert (run.status, run.exit_code) == (RunStatus.SUCCEEDED, 0), run.message
    assert run.extra["nodes"] == "n[1-2]"
    log = Path(run.run_dir, "stdout.log").read_text()
    assert "2 node(s) (n[1-2]), rendezvous 127.0.0.1:" in log
    reference = wait_for(registry, runs["reference"], ended)
    assert losses(run) == pytest.approx(losses(reference), rel=1e-5)


def test_cancel_writes_a_final_checkpoint(jobs):
    registry, runs = jobs
    run = wait_for(registry, runs["cancel"], lambda r: (r.latest_step or 0) >= 2 or r.terminal)
    assert run.status == RunStatus.RUNNING, run.message
    run = run_manager.cancel_run(run, grace_s=60, registry=registry, wait_s=JOB_TIMEOUT_S)
    assert (run.status, run.exit_code) == (RunStatus.CANCELLED, 138), run.message
    assert not run.extra.get("hard_cancel_sent")  # the graceful stop was enough
    last = max(losses(run))
    assert checkpoint_steps(run)[-1] == last and last >= 2
    assert "SIGUSR1 received" in Path(run.run_dir, "stdout.log").read_text()


def test_resume_continues_a_cancelled_slurm_run_in_a_new_job(jobs, monkeypatch):
    """relaunch --resume, as for local runs: a child job that starts from the parent's latest
    checkpoint (the run dirs are on the shared filesystem)."""
    registry, runs = jobs
    parent = wait_for(registry, runs["cancel"], ended)
    shared = Path(parent.run_dir).parents[1]
    monkeypatch.setenv("OLMO_TUI_RUNS_DIR", str(shared / "runs"))  # the child's run dir: shared too
    monkeypatch.setenv("XDG_CACHE_HOME", str(shared / "cache"))
    last = checkpoint_steps(parent)[-1]
    child = launcher.relaunch(parent, overrides=[f"--trainer.hard_stop={{value: {last + 2}, unit: steps}}"],
                                 resume=True, registry=registry)
    assert child.workload_id != parent.workload_id and child.parent_id == parent.id
    child = wait_for(registry, child, ended)
    assert (child.status, child.exit_code) == (RunStatus.SUCCEEDED, 0), child.message
    log = Path(child.run_dir, "stdout.log").read_text()
    assert f"(step {last})" in log and f"finished at step {last + 2}" in log
    assert sorted(losses(child)) == [last + 1, last + 2]


def test_time_limit_saves_a_checkpoint_before_the_kill(jobs):
    registry, runs = jobs
    run = wait_for(registry, runs["time_limit"], ended)
    log = Path(run.run_dir, "stdout.log").read_text()
    assert "SIGUSR1 from SLURM (time limit" in log, log[-3000:]
    assert run.status == RunStatus.CANCELLED and run.exit_code == 138, run.message
    assert "before the time limit" in run.message
    last = max(losses(run))
    assert checkpoint_steps(run)[-1] == last
    assert json.loads(Path(run.run_dir, "exit.json").read_text())["time_limit_signal"] is True


async def test_runs_table_and_monitor_show_a_slurm_run(jobs, monkeypatch):
    """The app on the finished reference run: the table's backend cell names the job id,
    partition and node, and the monitor fills its panels from the run dir as for a local run."""
    from olmo_tui.app.app import OlmoTuiApp
    from olmo_tui.app.screens.monitor import MonitorScreen
    from olmo_tui.app.screens.runs import RunsScreen

    monkeypatch.setenv("TEXTUAL_ANIMATIONS", "none")
    registry, runs = jobs
    run = wait_for(registry, runs["reference"], ended)
    Registry().add(run)  # the app reads the default registry (this test's private XDG dir)
    app = OlmoTuiApp()
    async with app.run_test(size=(150, 36)) as pilot:
        await pilot.pause()
        app.action_show_runs()
        deadline = time.monotonic() + 20
        while not (isinstance(app.screen, RunsScreen) and app.screen.runs) and time.monotonic() < deadline:
            await pilot.pause(0.1)
        table = app.screen.query_one("DataTable")
        cells = [str(c) for c in table.get_row(run.id)]
        assert f"slurm {run.workload_id} debug n1" in cells and "succeeded" in " ".join(cells)
        await pilot.press("enter")
        deadline = time.monotonic() + 20
        while not (isinstance(app.screen, MonitorScreen) and app.screen.metrics_seen >= STEPS):
            assert time.monotonic() < deadline, "the monitor did not read the run's metrics"
            await pilot.pause(0.1)
        header = "\n".join(str(w.render()) for w in app.screen.query("Static"))
        assert f"SLURM job {run.workload_id} debug COMPLETED n1" in header
