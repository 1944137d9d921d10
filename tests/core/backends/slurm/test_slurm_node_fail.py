"""A node that fails under a running job, on the real test cluster (slurm_cluster.py): with
launch.slurm.requeue off the run ends failed with SLURM's NODE_FAIL named; the default
(requeue on) puts it back in the queue and the new attempt, on the healthy node, resumes from
its checkpoint and finishes.

Runs after test_slurm_cluster.py (file order), whose jobs have ended by then; the node is put
back in service whatever happens."""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

import pytest
from slurm_cluster import slurm_cluster  # noqa: F401  (fixture)
from test_slurm_cluster import FAST, ended, steps, wait_for

from engine.config import resolve
from olmo_tui.core.launch import launcher, run_manager
from olmo_tui.core.backends.base import RunStatus
from olmo_tui.core.runs.registry import Registry

NODE, OTHER = "n2", "n1"  # the node that fails, and the one a requeued attempt may use


def scontrol(*args: str) -> None:
    out = subprocess.run(["scontrol", *args], timeout=10, capture_output=True, text=True)
    assert out.returncode == 0, f"scontrol {' '.join(args)}: {out.stderr.strip()}"


def node_state() -> str:
    out = subprocess.run(["sinfo", "--noheader", "--Node", f"--nodes={NODE}", "--format=%t"],
                         capture_output=True, text=True, timeout=10)
    return out.stdout.strip().rstrip("*~#!%$@^-")


def back_in_service() -> None:
    """RESUME the node if SLURM still has it down (ReturnToService may already have), then wait
    until it takes jobs again."""
    if node_state() in ("down", "drain", "drng", "fail"):
        scontrol("update", f"NodeName={NODE}", "State=RESUME")
    deadline = time.monotonic() + 60
    while node_state() not in ("idle", "mix", "alloc"):
        assert time.monotonic() < deadline, f"{NODE} did not come back: {node_state()}"
        time.sleep(0.5)


@pytest.fixture
def shared(slurm_cluster, tmp_path_factory, monkeypatch):  # noqa: F811
    shared = tmp_path_factory.mktemp("shared-node-fail")
    monkeypatch.setenv("OLMO_TUI_RUNS_DIR", str(shared / "runs"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(shared / "cache"))
    yield shared
    back_in_service()


def start_on_node(shared: Path, registry: Registry, *overrides: str):
    cfg = resolve(preset="tiny-cpu", overrides=[*FAST, f"--launch.slurm.shared_paths=[{shared}]",
                                                 f"--launch.slurm.extra_sbatch=['--exclude={OTHER}']",
                                                 steps(100_000), *overrides])
    return launcher.launch(cfg, preset="tiny-cpu", registry=registry)


def fail_node_under(run, registry: Registry):
    run = wait_for(registry, run, lambda r: (r.latest_step or 0) >= 4 or r.terminal)
    assert run.status == RunStatus.RUNNING, run.message
    scontrol("update", f"NodeName={NODE}", "State=DOWN", "Reason=olmo-tui-test")
    return run


def test_node_failure_without_requeue_is_a_failed_run_naming_node_fail(shared):
    registry = Registry(shared / "runs.db")
    run = fail_node_under(start_on_node(shared, registry, "--launch.slurm.requeue=false"), registry)
    run = wait_for(registry, run, ended, 60)
    assert run.status == RunStatus.FAILED and "a node failed" in (run.message or ""), (run.status, run.message)
    assert run.extra.get("state") == "NODE_FAIL"


def test_node_failure_with_requeue_resumes_from_the_checkpoint(shared):
    registry = Registry(shared / "runs.db")
    run = fail_node_under(start_on_node(shared, registry, "--trainer.hard_stop={value: 14, unit: steps}"), registry)
    run = wait_for(registry, run, lambda r: r.status == RunStatus.QUEUED or r.terminal, 60)
    assert run.status == RunStatus.QUEUED, (run.status, run.message, run.extra)
    # The failed node stays down; the new attempt may go to the other node (as on a real
    # cluster) and starts at once (SLURM would hold it ~2 min first).
    scontrol("update", f"JobId={run.workload_id}", f"ExcNodeList={NODE}", "StartTime=now")
    run = wait_for(registry, run, ended)
    assert (run.status, run.exit_code) == (RunStatus.SUCCEEDED, 0), run.message
    assert run.extra.get("nodes") == OTHER and run.extra.get("restarts") == 1, run.extra
    log = Path(run.run_dir, "stdout.log").read_text()
    found = re.search(r"resuming from \S+ \(step (\d+)\)", log)
    assert found and int(found.group(1)) >= 3, log[-3000:]
    assert "finished at step 14" in log
