"""The two halves of starting a run, which launch() and the sweep queue both use:

1. `preflight` then `prepare`: paths made absolute, the backend's pre-flight (nothing exists
   yet), then the run dir and its config.toml and the record, in that order, so nothing can run
   unrecorded. The caller adds the record to the registry (one row, or a sweep's rows in one
   transaction).
2. `start_prepared`: hand a prepared, recorded run to its backend and save what it returns.
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, List, Mapping, Optional

from engine import run_lock
from engine.atomic import write_atomic
from engine.config import ConfigError, ExperimentConfig, to_toml
from engine.run_dir import CONFIG_FILE
from engine.run_marker import process_start_ticks

from ..backends.base import BackendError, RunStatus, get_backend
from ..runs.registry import Registry, RunRecord, new_run_id, runs_root
from .preflight import check_before_launch, launch_paths

Warn = Callable[[str], None]


def planned_steps(cfg: ExperimentConfig) -> Optional[int]:
    """The step where training stops: the hard stop if set, else max_duration (None when
    the duration is in tokens/epochs the config cannot turn into steps)."""
    try:
        return cfg.steps_for(cfg.trainer.hard_stop or cfg.trainer.max_duration)
    except Exception:  # a duration the schema cannot convert: unknown until the engine says
        return None


@dataclass
class Checked:
    """A config that passed the launch pre-flight, and the id and dir its run will have."""
    cfg: ExperimentConfig
    run_id: str
    run_dir: Path
    warnings: List[str]


def preflight(cfg: ExperimentConfig, warn: Optional[Warn] = None) -> Checked:
    """Relative paths made absolute against this process's directory (Beaker: refused), then
    the backend's pre-flight. Raises UserError / ConfigError (a user mistake) or BackendError;
    creates nothing. Each warning also goes to `warn`."""
    cfg = launch_paths(cfg)
    run_id = new_run_id(cfg.run_name)
    run_dir = runs_root() / run_id
    warnings = list(check_before_launch(cfg, run_dir))
    for warning in warnings:
        if warn is not None:
            warn(warning)
    return Checked(cfg, run_id, run_dir, warnings)


def prepare(checked: Checked, parent_dir: Optional[Path] = None, exist_ok: bool = False, **fields: Any) -> RunRecord:
    """Create the run dir with its config.toml and the snapshot of the extensions' code it will
    run (its parent's, `parent_dir`, for a relaunch or resume); returns the record for the
    caller to add (`fields`: status, preset, parent, sweep...). Removes the dir again if this fails."""
    from engine.config.extensions.loader import prepare_snapshot

    checked.run_dir.mkdir(parents=True, exist_ok=exist_ok)  # exist_ok: made (and locked) by the caller
    try:
        write_atomic(checked.run_dir / CONFIG_FILE, to_toml(checked.cfg))
        prepare_snapshot(checked.cfg, checked.run_dir, parent_dir)
    except BaseException:
        shutil.rmtree(checked.run_dir, ignore_errors=True)
        raise
    fields.setdefault("status", RunStatus.STARTING)
    return RunRecord(id=checked.run_id, name=checked.cfg.run_name, backend=checked.cfg.launch.backend,
                     run_dir=str(checked.run_dir), total_steps=planned_steps(checked.cfg), **fields)


def start_now(checked: Checked, registry: Registry, secrets: Optional[Mapping[str, str]] = None,
              **fields: Any) -> RunRecord:
    """Prepare, record and launch at once. On any failure nothing is left behind (no row, no
    folder) and the error propagates."""
    parent = registry.get(fields["parent_id"]) if fields.get("parent_id") else None
    # This process holds the run-dir lock until the run's own processes hold theirs: a launch
    # killed half-way leaves a dir whose lock nobody holds, which the next look reconciles
    # (runs/reconcile.py), while one in progress is left alone.
    checked.run_dir.mkdir(parents=True, exist_ok=False)
    lock = run_lock.hold(checked.run_dir)
    # The launcher's own pid: a record left `starting` by a launcher that died is reconciled.
    fields.setdefault("extra", {"launcher": {"pid": os.getpid(), "pid_start": process_start_ticks(os.getpid())}})
    try:
        run = prepare(checked, Path(parent.run_dir) if parent else None, exist_ok=True, **fields)
        registry.add(run)
        launched = get_backend(run.backend).launch(run, checked.cfg, dict(secrets or {}))
    except BaseException:
        try:
            registry.remove(checked.run_id)
        except Exception:  # the registry itself may be what failed; the folder goes regardless
            pass
        run_lock.release(lock)
        shutil.rmtree(checked.run_dir, ignore_errors=True)
        raise
    try:
        return registry.save_changes(run, launched)
    finally:
        run_lock.release(lock)


def start_prepared(run: RunRecord, cfg: ExperimentConfig, registry: Registry,
                   secrets: Optional[Mapping[str, str]] = None) -> RunRecord:
    """Launch a run prepared and recorded earlier (a queued one). A launch that fails is the
    run's failure, kept in the registry with the reason."""
    try:
        launched = get_backend(run.backend).launch(run, cfg, dict(secrets or {}))
    except (BackendError, ConfigError, OSError) as exc:
        failed = replace(run, status=RunStatus.FAILED, ended=time.time(), message=f"launch failed: {exc}")
        return registry.save_changes(run, failed)
    return registry.save_changes(run, launched)
