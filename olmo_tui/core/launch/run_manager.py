"""A run after it started, for the app and the headless CLI: refresh, cancel, forget, its config
and checkpoints, what relaunch and resume change. Backends do the work (backends/), the registry
keeps the rows (registry.py). Starting a run is launcher.launch().
"""

from __future__ import annotations

import shutil
import time
from dataclasses import replace
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from engine.config import ExperimentConfig, resolve
from engine.run_dir import CHECKPOINTS_DIR, CONFIG_FILE, FORGOTTEN_MARKER

from ..backends.base import BackendError, RunStatus, get_backend, sees_local_files
from ..runs.registry import Registry, RunRecord, runs_root

DEFAULT_GRACE_S = 60.0


def refresh_run(run: RunRecord, registry: Optional[Registry] = None) -> RunRecord:
    """Look at an active run now and record what changed (ended, vanished, new step). A run
    recorded as lost is looked at again where its backend can tell (it may be alive after all)."""
    if run.waiting_in_queue or (run.terminal and run.status != RunStatus.LOST):
        return run
    registry = registry or Registry()
    try:
        backend = get_backend(run.backend)
        if run.terminal and not backend.rechecks_lost:
            return run
        fresh = backend.refresh(run)
    except BackendError as exc:
        if run.terminal:  # a lost run of a backend not installed here: nothing to recheck
            return run
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


# config.toml -> its resolved config, keyed by the file's identity (path, size, mtime): the
# monitor asks for a run's latest checkpoint every half second and must not validate the whole
# schema each time. A rewritten file has a new key. Bounded: the oldest entries go first.
_CONFIGS: Dict[Tuple[str, int, int], ExperimentConfig] = {}
_CONFIGS_KEPT = 64


def run_config(run: RunRecord) -> ExperimentConfig:
    """The resolved config the run was launched with (its run dir's config.toml)."""
    path = Path(run.run_dir) / CONFIG_FILE
    try:
        stat = path.stat()
    except OSError:
        raise BackendError(f"{path} is missing: the run's config cannot be recovered") from None
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    if key not in _CONFIGS:
        _CONFIGS[key] = resolve(config_file=str(path))
        while len(_CONFIGS) > _CONFIGS_KEPT:
            del _CONFIGS[next(iter(_CONFIGS))]
    return _CONFIGS[key].model_copy(deep=True)  # callers may change their copy


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
    if not sees_local_files(run.backend):
        # The default folder was inside the job's container: nothing there to continue from.
        raise BackendError(f"run {run.id} saved its checkpoints inside the {run.backend} job; set "
                           "trainer.save_folder to a shared path (e.g. a Weka mount) to resume such runs")
    return [f"--trainer.save_folder={checkpoint_folder(run, cfg)}"]


def resume_config(run: RunRecord, overrides: Sequence[str] = ()) -> ExperimentConfig:
    return relaunch_config(run, [*resume_overrides(run), *overrides])


def forget_run(run: RunRecord, delete_files: bool = False, registry: Optional[Registry] = None) -> None:
    """Drop the registry row; with delete_files also the run dir (only inside the runs root,
    never a folder the row merely points at elsewhere). Active runs must be cancelled first."""
    registry = registry or Registry()
    run = refresh_run(run, registry)
    if not run.terminal:
        raise BackendError(f"run {run.id} is {run.status}; cancel it before forgetting it")
    # The mark first: the runs table's refresh (every second) re-records run dirs no record
    # points at (reconcile.py, discovery.py), so a forgotten run came back, deleted files or not.
    try:
        (Path(run.run_dir) / FORGOTTEN_MARKER).touch()
    except OSError:  # gone, or not on this filesystem (a remote backend's dir): nothing to re-find
        pass
    registry.remove(run.id)
    if delete_files:
        run_dir = Path(run.run_dir).resolve()
        root = runs_root().resolve()
        if root in run_dir.parents:
            shutil.rmtree(run_dir, ignore_errors=True)
