"""launch(): one way to start a run, so a notify hook changes where a run waits, never what is
checked. With a hook set, the same pre-flight refuses the same mistakes (nothing recorded, nothing
queued); relaunch and resume keep the parent's hook; Beaker's and SLURM's own pre-flights run on
the hooked path as on the plain one."""

from __future__ import annotations

import json
import sys
from dataclasses import replace

import pytest

from cli_helpers import run_cli
from engine.config import ConfigError, resolve
from engine.errors import UserError
from olmo_tui.core.backends.base import set_backend
from olmo_tui.core.backends.beaker import BeakerBackend
from olmo_tui.core.launch import launcher
from olmo_tui.core.launch.sweep_queue import all_sweeps, get_sweep
from olmo_tui.core.runs.registry import Registry, RunRecord, runs_root
from olmo_tui.core.runs.run_status import RunStatus

HOOK = f"--launch.notify.command={json.dumps([sys.executable, '-c', 'pass'])}"
MISSING = "--dataset.paths=[/no/such/dir/train.npy]"


def nothing_recorded() -> None:
    assert not runs_root().exists() or list(runs_root().iterdir()) == []
    if Registry().path.exists():
        assert Registry().all() == [] and all_sweeps(Registry()) == []


def test_a_hooked_launch_with_a_missing_data_path_is_one_line_exit_2_and_queues_nothing(isolated_xdg):
    out = run_cli("--preset", "tiny-cpu", "--dataset.kind=numpy", MISSING, HOOK)
    assert out.returncode == 2, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: dataset.paths:") and "/no/such/dir/train.npy" in lines[0]
    assert out.stdout == ""
    nothing_recorded()


def test_the_hooked_path_runs_the_slurm_preflight(isolated_xdg, tmp_path):
    cfg = resolve("tiny-cpu", overrides=["--launch.backend=slurm", f"--launch.slurm.shared_paths=[{tmp_path / 'shared'}]",
                                         HOOK])
    with pytest.raises(ConfigError) as refused:  # the runs root is not under the shared path
        launcher.launch(cfg, preset="tiny-cpu")
    assert refused.value.issues[0].paths == ("launch.slurm.shared_paths",)
    nothing_recorded()


def test_the_hooked_path_runs_the_beaker_preflight(isolated_xdg, tmp_path):
    set_backend("beaker", BeakerBackend(repo=tmp_path))  # a checkout that is no git repository
    try:
        cfg = resolve("tiny-cpu", overrides=["--launch.backend=beaker", HOOK])
        with pytest.raises(ConfigError) as refused:
            launcher.launch(cfg, preset="tiny-cpu")
        assert "is not a git checkout" in str(refused.value)
        with pytest.raises(UserError):  # and a relative path is refused for a container, hook or not
            launcher.launch(resolve("tiny-cpu", overrides=["--launch.backend=beaker", "--launch.beaker.code_in_image",
                                                           "--dataset.kind=numpy", "--dataset.paths=[rel.npy]", HOOK]))
    finally:
        set_backend("beaker", None)
    nothing_recorded()


def queued_parent(registry: Registry, *overrides: str) -> RunRecord:
    """A finished run as a hooked launch leaves it (queued, then ended), without starting a worker:
    the worker's own behaviour is test_notify_config's."""
    from olmo_tui.core.launch.sweep_queue import queue_sweep
    from olmo_tui.core.sweeps.sweep import NotifySpec, SweepSpec, plan

    cfg = resolve("tiny-cpu", overrides=list(overrides))
    spec = SweepSpec(notify=NotifySpec(command=[sys.executable, "-c", "pass"]))
    (run,) = queue_sweep("parent-sweep", spec, plan(spec, base=cfg), preset="tiny-cpu", registry=registry)
    registry.transition(run.id, RunStatus.QUEUED, status=RunStatus.SUCCEEDED, started=1.0, ended=2.0)
    return registry.get(run.id)


@pytest.fixture
def no_worker(monkeypatch):
    """Queueing starts the sweep's detached worker; these tests only look at what was queued."""
    started = []
    monkeypatch.setattr("olmo_tui.core.launch.sweep_queue.spawn_worker", lambda name: started.append(name) or 0)
    return started


@pytest.mark.parametrize("resume", [False, True])
def test_relaunch_and_resume_keep_the_hook_of_the_config(isolated_xdg, no_worker, resume):
    registry = Registry()
    parent = queued_parent(registry, HOOK)
    if resume:  # resume needs a checkpoint folder to point at; an empty one is fine for queueing
        (runs_root() / parent.id / "checkpoints").mkdir()
    child = launcher.relaunch(parent, resume=resume, registry=registry)
    assert (child.status, child.parent_id, child.relation) == (RunStatus.QUEUED, parent.id,
                                                              "resume" if resume else "relaunch")
    assert child.sweep and child.sweep != parent.sweep and no_worker == [child.sweep]
    assert get_sweep(child.sweep, registry).notify.command == [sys.executable, "-c", "pass"]


def test_relaunch_keeps_a_hook_given_by_flag_to_the_sweep(isolated_xdg, no_worker):
    """--notify-cmd puts the hook in the sweep's spec, not in config.toml: it still comes along."""
    registry = Registry()
    parent = queued_parent(registry)  # the config names no hook; the sweep does
    assert resolve(config_file=str(runs_root() / parent.id / "config.toml")).launch.notify is None
    child = launcher.relaunch(parent, ["--init_seed=3"], registry=registry)
    assert child.status == RunStatus.QUEUED and child.sweep and no_worker == [child.sweep]
    assert get_sweep(child.sweep, registry).notify.command == [sys.executable, "-c", "pass"]


def test_a_relaunch_without_any_hook_starts_at_once(isolated_xdg, monkeypatch):
    """The plain path is unchanged: no sweep, the backend launches at once (a stand-in backend
    records the call, so no torchrun is needed)."""
    launched = []

    class Recording:
        name, description, sees_local_files, spec_file, rechecks_lost = "local", "stand-in", True, None, False

        def preflight(self, cfg, run_dir):
            return []

        def launch(self, run, cfg, secrets):
            launched.append(run.id)
            return replace(run, status=RunStatus.RUNNING, pid=1)

    set_backend("local", Recording())
    try:
        run = launcher.launch(resolve("tiny-cpu"), preset="tiny-cpu")
    finally:
        set_backend("local", None)
    assert launched == [run.id] and run.status == RunStatus.RUNNING and run.sweep is None
    assert (runs_root() / run.id / "config.toml").is_file()
