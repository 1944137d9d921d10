"""Run lifecycle shared by the app and the headless CLI: start, refresh, cancel, relaunch,
resume, forget. Backends do the work (backends/), the registry keeps the rows (registry.py);
this module is the only place that combines the two.
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import replace
from pathlib import Path
from typing import List, Mapping, Optional, Sequence

from engine import run_lock
from engine.atomic import write_atomic
from engine.config import ExperimentConfig, resolve, to_toml
from engine.config.extensions.loader import prepare_snapshot
from engine.run_dir import CHECKPOINTS_DIR, CONFIG_FILE
from engine.run_marker import process_start_ticks

from ..backends.base import RUN_DIR_BACKENDS, BackendError, RunStatus, get_backend
from ..runs.registry import Registry, RunRecord, new_run_id, runs_root
from .preflight import check_before_launch, launch_paths

DEFAULT_GRACE_S = 60.0


def planned_steps(cfg: ExperimentConfig) -> Optional[int]:
    """The step where training stops: the hard stop if set, else max_duration (None when
    the duration is in tokens/epochs the config cannot turn into steps)."""
    try:
        return cfg.steps_for(cfg.trainer.hard_stop or cfg.trainer.max_duration)
    except Exception:  # a duration the schema cannot convert: unknown until the engine says
        return None


def start_run(cfg: ExperimentConfig, preset: Optional[str] = None, parent_id: Optional[str] = None,
              relation: Optional[str] = None, secrets: Optional[Mapping[str, str]] = None,
              registry: Optional[Registry] = None) -> RunRecord:
    """Pre-flight (relative paths made absolute against this process's current directory, then
    checked), then create the run dir (config.toml), add the registry row, launch. A user
    mistake found by the pre-flight raises engine.errors.UserError before anything exists; on
    BackendError nothing is left behind (no row, no folder) and the error propagates."""
    registry = registry or Registry()
    backend = get_backend(cfg.launch.backend)
    cfg = launch_paths(cfg)
    run_id = new_run_id(cfg.run_name)
    run_dir = runs_root() / run_id
    check_before_launch(cfg, run_dir)
    run_dir.mkdir(parents=True, exist_ok=False)
    # This process holds the run-dir lock until the run's own processes hold theirs: a launch
    # killed half-way leaves a dir whose lock nobody holds, which the next look reconciles
    # (runs/reconcile.py), while one in progress is left alone.
    lock = run_lock.hold(run_dir)
    # The launcher's own pid: a record left `starting` by a launcher that died is reconciled.
    me = {"pid": os.getpid(), "pid_start": process_start_ticks(os.getpid())}
    run = RunRecord(id=run_id, name=cfg.run_name, backend=backend.name, run_dir=str(run_dir),
                    status=RunStatus.STARTING, preset=preset, parent_id=parent_id, relation=relation,
                    total_steps=planned_steps(cfg), extra={"launcher": me})
    try:
        write_atomic(run_dir / CONFIG_FILE, to_toml(cfg))
        parent = registry.get(parent_id) if parent_id else None
        # The extensions' code the run will run: its parent's for a relaunch or resume.
        prepare_snapshot(cfg, run_dir, Path(parent.run_dir) if parent else None)
        registry.add(run)
        launched = backend.launch(run, cfg, dict(secrets or {}))
    except BaseException:
        try:
            registry.remove(run_id)
        except Exception:  # the registry itself may be what failed; the folder goes regardless
            pass
        run_lock.release(lock)
        shutil.rmtree(run_dir, ignore_errors=True)
        raise
    try:
        return registry.save_changes(run, launched)
    finally:
        run_lock.release(lock)


def refresh_run(run: RunRecord, registry: Optional[Registry] = None) -> RunRecord:
    """Look at an active run now and record what changed (ended, vanished, new step). A run
    recorded as lost is looked at again where its backend can tell (it may be alive after all)."""
    if run.waiting_in_queue:
        return run
    backend = get_backend(run.backend)
    if run.terminal and not (run.status == RunStatus.LOST and getattr(backend, "rechecks_lost", False)):
        return run
    registry = registry or Registry()
    try:
        fresh = backend.refresh(run)
    except BackendError as exc:
        fresh = replace(run, message=str(exc))
    return registry.save_changes(run, fresh)


def refresh_all(registry: Optional[Registry] = None) -> List[RunRecord]:
    from ..runs.discovery import discover_engine_runs

    registry = registry or Registry()
    discover_engine_runs(registry)  # runs `olmo-train NAME` started in the runs root; launched dirs unrecorded
    return [refresh_run(run, registry) for run in registry.all()]


def cancel_run(run: RunRecord, grace_s: float = DEFAULT_GRACE_S, registry: Optional[Registry] = None,
               wait_s: Optional[float] = None) -> RunRecord:
    """Graceful stop (SIGTERM / Beaker cancel), hard kill after grace_s. With wait_s, wait
    that long for the run to end and return its final record."""
    registry = registry or Registry()
    run = refresh_run(run, registry)
    if run.terminal:
        return run
    if run.waiting_in_queue:
        # Not started yet: take it off the queue, unless the sweep worker is starting it now
        # (then it is cancelled like any started run, below).
        if registry.transition(run.id, RunStatus.QUEUED, status=RunStatus.CANCELLED, ended=time.time(),
                               message="cancelled before it started"):
            return registry.get(run.id) or run
        run = registry.get(run.id) or run
        if run.terminal:
            return run
    run = registry.save_changes(run, get_backend(run.backend).cancel(run, grace_s))
    deadline = time.monotonic() + (wait_s or 0)
    while not run.terminal and time.monotonic() < deadline:
        time.sleep(0.2)
        run = refresh_run(run, registry)
    return run


def run_config(run: RunRecord) -> ExperimentConfig:
    """The resolved config the run was launched with (its run dir's config.toml)."""
    path = Path(run.run_dir) / CONFIG_FILE
    if not path.exists():
        raise BackendError(f"{path} is missing: the run's config cannot be recovered")
    return resolve(config_file=str(path))


def relaunch_config(run: RunRecord, overrides: Sequence[str] = ()) -> ExperimentConfig:
    """The parent's resolved config with `overrides` applied (ConfigError on bad ones)."""
    return resolve(config_file=str(Path(run.run_dir) / CONFIG_FILE), overrides=list(overrides))


def checkpoint_folder(run: RunRecord, cfg: Optional[ExperimentConfig] = None) -> Path:
    cfg = cfg or run_config(run)
    return Path(cfg.trainer.save_folder) if cfg.trainer.save_folder else Path(run.run_dir) / CHECKPOINTS_DIR


def latest_checkpoint(run: RunRecord, cfg: Optional[ExperimentConfig] = None) -> Optional[Path]:
    """The newest complete checkpoint, as the engine's resume sees it (engine/checkpoint_layout.py)."""
    from engine.checkpoint_layout import latest_checkpoint as latest_in

    try:
        return latest_in(checkpoint_folder(run, cfg))
    except (OSError, BackendError):
        return None


def resume_overrides(run: RunRecord) -> list:
    """What turns the parent's config into "continue from its latest checkpoint": the new run
    saves into (and so resumes from) the parent's checkpoint folder."""
    cfg = run_config(run)
    if cfg.trainer.save_folder:
        return []
    if run.backend not in RUN_DIR_BACKENDS:
        # The default folder was inside the job's container: nothing there to continue from.
        raise BackendError(f"run {run.id} saved its checkpoints inside the {run.backend} job; set "
                           "trainer.save_folder to a shared path (e.g. a Weka mount) to resume such runs")
    return [f"--trainer.save_folder={checkpoint_folder(run, cfg)}"]


def resume_config(run: RunRecord, overrides: Sequence[str] = ()) -> ExperimentConfig:
    return relaunch_config(run, [*resume_overrides(run), *overrides])


def relaunch(run: RunRecord, overrides: Sequence[str] = (), resume: bool = False,
             secrets: Optional[Mapping[str, str]] = None, registry: Optional[Registry] = None) -> RunRecord:
    """A child run of `run`: its config with `overrides` (relaunch), or also continuing from
    its latest checkpoint (resume)."""
    cfg = resume_config(run, overrides) if resume else relaunch_config(run, overrides)
    return start_run(cfg, preset=run.preset, parent_id=run.id, relation="resume" if resume else "relaunch",
                     secrets=secrets, registry=registry)


def forget_run(run: RunRecord, delete_files: bool = False, registry: Optional[Registry] = None) -> None:
    """Drop the registry row; with delete_files also the run dir (only inside the runs root,
    never a folder the row merely points at elsewhere). Active runs must be cancelled first."""
    registry = registry or Registry()
    run = refresh_run(run, registry)
    if not run.terminal:
        raise BackendError(f"run {run.id} is {run.status}; cancel it before forgetting it")
    registry.remove(run.id)
    if delete_files:
        run_dir = Path(run.run_dir).resolve()
        root = runs_root().resolve()
        if root in run_dir.parents:
            shutil.rmtree(run_dir, ignore_errors=True)
