"""The real beaker-py client against the fake Beaker server (tests/core/backends/beaker/fake_beaker.py):
launch, follow, preemption, cancel, failure, and what the server received."""

from __future__ import annotations

import subprocess
import threading
import time
from pathlib import Path

import pytest
from beaker_fixtures import beaker_env, fake_beaker  # noqa: F401  (fixtures)

from engine.config import resolve
from olmo_tui.core.backends.base import RunStatus, set_backend
from olmo_tui.core.backends.beaker import BeakerBackend
from olmo_tui.core.backends.beaker.client import BeakerClient
from olmo_tui.core.backends.beaker.spec import experiment_name, node_command
from olmo_tui.core.runs.registry import Registry
from olmo_tui.core.launch.run_manager import cancel_run, refresh_run
from olmo_tui.core.launch.launcher import launch as start_run
from engine.run_dir import parse_metrics_line

pytestmark = pytest.mark.timeout(60)
REMOTE = "https://github.com/example/olmo-tui.git"


def git_repo(path: Path) -> str:
    """A clean checkout with a remote, as a researcher's would be; returns its HEAD."""
    path.mkdir()
    run = lambda *a: subprocess.run(["git", "-C", str(path), *a], check=True, capture_output=True, text=True)  # noqa: E731
    run("init", "-q")
    run("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "--allow-empty", "-m", "init")
    run("remote", "add", "origin", REMOTE)
    return run("rev-parse", "HEAD").stdout.strip()


@pytest.fixture
def backend(beaker_env, tmp_path):  # noqa: F811
    head = git_repo(tmp_path / "checkout")
    b = BeakerBackend(client=BeakerClient(timeout_s=3), repo=tmp_path / "checkout",
                      refresh_timeout_s=3, launch_timeout_s=3, poll_s=0.05, retry_s=0.2, min_refresh_s=0)
    b.head = head
    set_backend("beaker", b)
    yield b
    set_backend("beaker", None)
    b.client.close()


def beaker_cfg(*overrides):
    return resolve(preset="tiny-cpu", overrides=[
        "--launch.backend=beaker", "--launch.beaker.image=team/olmo-tui", "--launch.beaker.nodes=2",
        "--launch.beaker.gpus=1", "--launch.beaker.clusters=[ai2/jupiter]", "--launch.beaker.env={WANDB_MODE: offline}",
        "--launch.beaker.secrets=[{env_var: HF_TOKEN, secret: team-hf-token}]", *overrides])


class LogCollector:
    """follow_logs in a thread, as the app's monitor and the headless follower run it."""

    def __init__(self, backend, run):
        self.lines, self.stop = [], threading.Event()
        self.thread = threading.Thread(target=lambda: self.lines.extend(backend.follow_logs(run, self.stop)), daemon=True)
        self.thread.start()

    def wait_for(self, text: str, timeout: float = 10) -> None:
        deadline = time.monotonic() + timeout
        while not any(text in line for line in list(self.lines)):
            assert time.monotonic() < deadline, f"{text!r} not in {self.lines}"
            time.sleep(0.02)

    def join(self, timeout: float = 10) -> list:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "follow_logs did not end with the job"
        return self.lines


def test_launch_run_succeed_and_what_the_server_received(backend, fake_beaker):  # noqa: F811
    registry = Registry()
    run = start_run(beaker_cfg(), preset="tiny-cpu", registry=registry)
    assert run.status == RunStatus.QUEUED and run.workload_id
    assert run.extra["url"] == f"{fake_beaker.agent_address}/ex/{run.workload_id}"
    state = fake_beaker.state
    # the spec as the server got it
    (spec,) = state.specs
    task = spec["tasks"][0]
    assert task["image"] == {"beaker": "team/olmo-tui"}
    assert task["command"] == node_command()
    env = {e["name"]: e for e in task["envVars"]}
    assert env["OLMO_TUI_GIT_COMMIT"]["value"] == backend.head and env["OLMO_TUI_GIT_REMOTE"]["value"] == REMOTE
    assert env["WANDB_MODE"]["value"] == "offline" and env["HF_TOKEN"] == {"name": "HF_TOKEN", "secret": "team-hf-token"}
    assert task["replicas"] == 2 and task["leaderSelection"] and task["hostNetworking"]
    assert task["constraints"] == {"cluster": ["ai2/jupiter"]}
    assert state.created_names == [experiment_name(run.id)]
    # auth: the REST create and every gRPC call carried the token
    assert state.http_auth == [f"Bearer {fake_beaker.TOKEN}"]
    assert state.rpc_auth and set(state.rpc_auth) == {f"bearer {fake_beaker.TOKEN}"}
    # the spec is kept beside the run
    assert (Path(run.run_dir) / "beaker-spec.json").exists()

    exp = run.workload_id
    assert refresh_run(run, registry).status == RunStatus.QUEUED
    state.start_job(exp)
    state.log(exp, "[olmo-tui] node 0 of 2", '[metrics] {"step": 1, "time": 1.0, "total_steps": 4, "loss": 5.5, "tps": 1000}')
    run = refresh_run(run, registry)
    assert run.status == RunStatus.RUNNING and run.latest_step == 1 and run.summary["loss"] == 5.5
    logs = LogCollector(backend, run)
    logs.wait_for("step\": 1")
    state.log(exp, '[metrics] {"step": 4, "time": 2.0, "total_steps": 4, "loss": 4.25, "tps": 1200}', "done")
    state.finish_job(exp, 0)
    lines = logs.join()
    assert lines[0].startswith("[olmo-tui] Beaker workload") and run.extra["url"] in lines[0]
    assert lines[1:] == ["[olmo-tui] node 0 of 2", '[metrics] {"step": 1, "time": 1.0, "total_steps": 4, "loss": 5.5, "tps": 1000}',
                         '[metrics] {"step": 4, "time": 2.0, "total_steps": 4, "loss": 4.25, "tps": 1200}', "done"]
    assert [parse_metrics_line(line)["step"] for line in lines if parse_metrics_line(line)] == [1, 4]
    run = refresh_run(run, registry)
    assert (run.status, run.exit_code, run.latest_step) == (RunStatus.SUCCEEDED, 0, 4)
    assert registry.get(run.id).status == RunStatus.SUCCEEDED


def test_failure_records_the_exit_code(backend, fake_beaker):  # noqa: F811
    registry = Registry()
    run = start_run(beaker_cfg("--launch.beaker.nodes=1"), registry=registry)
    fake_beaker.state.start_job(run.workload_id)
    fake_beaker.state.log(run.workload_id, "Traceback (most recent call last):", "ValueError: boom")
    fake_beaker.state.finish_job(run.workload_id, 3)
    run = refresh_run(run, registry)
    assert (run.status, run.exit_code) == (RunStatus.FAILED, 3)
    assert "exited with code 3" in run.message
    assert registry.get(run.id).exit_code == 3
    lines = list(backend.follow_logs(run, threading.Event()))
    assert lines[-1] == "ValueError: boom"


def test_preempted_job_is_followed_to_its_replacement(backend, fake_beaker):  # noqa: F811
    registry = Registry()
    run = start_run(beaker_cfg(), registry=registry)
    exp, state = run.workload_id, fake_beaker.state
    state.start_job(exp)
    state.log(exp, '[metrics] {"step": 1, "time": 1.0, "total_steps": 4, "loss": 5.0}')
    logs = LogCollector(backend, refresh_run(run, registry))
    logs.wait_for('"step": 1')
    state.preempt(exp)
    run = refresh_run(run, registry)
    assert run.status == RunStatus.PREEMPTED and "replacement" in run.message
    state.start_job(exp)
    state.log(exp, "resuming from step 1", '[metrics] {"step": 4, "time": 2.0, "total_steps": 4, "loss": 4.0}')
    state.finish_job(exp, 0)
    lines = logs.join()
    marker = next(i for i, line in enumerate(lines) if "following its replacement" in line)
    assert "preempted" in lines[marker]
    assert lines[marker + 1:] == ["resuming from step 1", '[metrics] {"step": 4, "time": 2.0, "total_steps": 4, "loss": 4.0}']
    run = refresh_run(run, registry)
    assert run.status == RunStatus.SUCCEEDED and run.extra["preemptions"] == 1


def test_cancel_sends_the_workload_id(backend, fake_beaker):  # noqa: F811
    registry = Registry()
    run = start_run(beaker_cfg(), registry=registry)
    fake_beaker.state.start_job(run.workload_id)
    run = cancel_run(run, registry=registry)
    assert fake_beaker.state.cancelled_ids == [run.workload_id]
    assert run.status == RunStatus.CANCELLED and run.cancel_requested
    assert registry.get(run.id).status == RunStatus.CANCELLED


def test_relaunch_submits_a_new_experiment_with_the_edit(backend, fake_beaker):  # noqa: F811
    from olmo_tui.core.launch.launcher import relaunch

    registry = Registry()
    parent = start_run(beaker_cfg(), registry=registry)
    child = relaunch(parent, ["--launch.beaker.priority=high"], registry=registry)
    assert child.parent_id == parent.id and child.workload_id != parent.workload_id
    first, second = fake_beaker.state.specs
    assert first["tasks"][0]["context"]["priority"] == "normal" and second["tasks"][0]["context"]["priority"] == "high"


def test_multi_node_failure_of_one_replica_and_starting(backend, fake_beaker):  # noqa: F811
    registry = Registry()
    run = start_run(beaker_cfg("--launch.beaker.nodes=2"), registry=registry)
    state = fake_beaker.state
    assert len(state.only_experiment().task_ids) == 2
    state.schedule_job(run.workload_id)
    assert refresh_run(run, registry).status == RunStatus.STARTING
    state.start_job(run.workload_id)
    state.log(run.workload_id, "rank 0 working")
    assert refresh_run(run, registry).status == RunStatus.RUNNING
    state.finish_job(run.workload_id, 9, rank=1)  # replica 1 dies; Beaker cancels replica 0
    run = refresh_run(run, registry)
    assert (run.status, run.exit_code) == (RunStatus.FAILED, 9)
    assert "replica 1" in run.message and "exited with code 9" in run.message
    assert [r["status"] for r in run.extra["replicas"]] == [RunStatus.FAILED, RunStatus.FAILED]
    # `olmo-tui logs RUN` (no -f): what exists now, then done
    assert list(backend.follow_logs(run, threading.Event(), follow=False))[1:] == ["rank 0 working"]


def test_vanished_workload_is_lost(backend, fake_beaker):  # noqa: F811
    registry = Registry()
    run = start_run(beaker_cfg(), registry=registry)
    fake_beaker.state.experiments.clear()  # deleted on Beaker
    run = refresh_run(run, registry)
    assert run.status == RunStatus.LOST and "does not know this workload" in run.message


def test_missing_secret_is_refused_before_anything_is_created(backend, fake_beaker):  # noqa: F811
    from olmo_tui.core.backends.base import BackendError

    registry = Registry()
    with pytest.raises(BackendError, match=r"no secret 'nope' \(for \$HF_TOKEN\).*beaker secret write nope"):
        start_run(beaker_cfg("--launch.beaker.secrets=[{env_var: HF_TOKEN, secret: nope}]"), registry=registry)
    assert fake_beaker.state.specs == [] and registry.count() == 0


def test_refresh_asks_beaker_at_most_every_min_refresh_s(backend, fake_beaker):  # noqa: F811
    registry = Registry()
    run = start_run(beaker_cfg(), registry=registry)
    backend.min_refresh_s = 60
    first = refresh_run(run, registry)
    calls = len(fake_beaker.state.rpc_auth)
    fake_beaker.state.start_job(run.workload_id)
    second = refresh_run(first, registry)
    assert len(fake_beaker.state.rpc_auth) == calls and second.status == first.status == RunStatus.QUEUED
    backend.min_refresh_s = 0
    assert refresh_run(second, registry).status == RunStatus.RUNNING
