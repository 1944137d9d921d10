"""A sweep's queue, kept in the run registry so it outlives whoever launched it.

Queueing writes every variant's run dir (config.toml) and then, in ONE transaction, a `sweeps`
row plus one `runs` row per variant (status queued, tagged with the sweep and its index):
killing the launcher at any moment leaves either the whole queue or none of it.

A detached worker (sweep_worker.py: its own session, like the local launcher's wrapper) starts
the queued runs, at most `max_parallel` at a time, the next one when one ends. One worker per
sweep: it holds an exclusive flock on the sweep's lock file for its whole life (the kernel drops
it when the worker dies, however it dies). Any look at the runs (`olmo-tui runs`, the app's runs
screen) restarts the worker of a sweep that still has work and no worker (ensure_workers).

Starting a queued run is a compare-and-set on its status (queued -> starting), so the worker
and a `cancel` racing on the same run never both win.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from engine import run_lock
from engine.config import ConfigError
from engine.run_marker import process_start_ticks

from ..backends.base import BackendError, RunStatus
from ..backends.run_files import REPO_ROOT
from ..runs.registry import Registry, RegistryError, RunRecord, state_dir
from ..sweeps.sweep import SWEEP_NAME, NotifySpec, SweepSpec, Variant
from .prepare import Warn, preflight, prepare, start_prepared
from .run_manager import run_config



@dataclass
class SweepRecord:
    name: str
    created: float
    max_parallel: int
    spec: Dict[str, Any]
    worker_pid: Optional[int] = None
    worker_start: Optional[int] = None
    ended: Optional[float] = None
    message: Optional[str] = None

    @property
    def notify(self) -> Optional[NotifySpec]:
        return NotifySpec.from_json(self.spec.get("notify"))

    def to_json(self) -> Dict[str, Any]:
        return {"name": self.name, "created": self.created, "max_parallel": self.max_parallel, "spec": self.spec,
                "worker_pid": self.worker_pid, "ended": self.ended, "message": self.message}


def sweeps_dir() -> Path:
    return state_dir() / "sweeps"


def _checked(name: str) -> str:
    # Sweep names become file names: never a separator or a leading dot (SWEEP_NAME).
    if not SWEEP_NAME.match(name):
        raise ValueError(f"not a sweep name: {name!r}")
    return name


def lock_path(name: str) -> Path:
    return sweeps_dir() / f"{_checked(name)}.lock"


def log_path(name: str) -> Path:
    """The worker's own log (what it started, what ended, notification problems)."""
    return sweeps_dir() / f"{_checked(name)}.log"


def get_sweep(name: str, registry: Registry) -> Optional[SweepRecord]:
    rows = registry.query("SELECT * FROM sweeps WHERE name = ?", (name,))
    if not rows:
        return None
    data = dict(rows[0])
    data["spec"] = json.loads(data["spec"] or "{}")
    return SweepRecord(**data)


def all_sweeps(registry: Registry) -> List[SweepRecord]:
    names = [row["name"] for row in registry.query("SELECT name FROM sweeps ORDER BY created DESC")]
    return [s for s in (get_sweep(name, registry) for name in names) if s]


def update_sweep(name: str, registry: Registry, **changes: Any) -> None:
    assignments = ", ".join(f"{key} = ?" for key in changes)
    values = tuple(json.dumps(v) if key == "spec" else v for key, v in changes.items())
    registry.write(f"UPDATE sweeps SET {assignments} WHERE name = ?", (*values, name))


def spec_record(spec: SweepSpec, variants: Sequence[Variant]) -> Dict[str, Any]:
    """What the registry keeps of a spec: enough to show and re-plan it, never a secret (the
    notify hook holds an argv and the NAME of the webhook's environment variable)."""
    return {
        "preset": spec.preset, "config": spec.config, "overrides": spec.overrides,
        "grid": {axis.path: axis.values for axis in spec.grid},
        "zip": {axis.path: axis.values for axis in spec.zipped},
        "notify": spec.notify.to_json() if spec.notify else None,
        "variants": len(variants),
    }


def queue_sweep(name: str, spec: SweepSpec, variants: Sequence[Variant], preset: Optional[str] = None,
                registry: Optional[Registry] = None, parent_id: Optional[str] = None,
                relation: Optional[str] = None, warn: Optional[Warn] = None) -> List[RunRecord]:
    """Write the run dirs and the whole queue (all or nothing). ConfigError if the name is taken;
    every variant passes the launch pre-flight first (prepare.preflight: UserError / ConfigError
    before anything is written). Relative paths become absolute against this process's current
    directory: the worker that starts the runs later lives elsewhere."""
    registry = registry or Registry()
    if not SWEEP_NAME.match(name):
        raise ConfigError.one("name", f"{name!r} is not a valid sweep name: letters, digits, '.', '_', '-'")
    if get_sweep(name, registry) is not None:
        raise ConfigError.one("name", f"a sweep named {name!r} exists already; pick another --name")
    checked = [preflight(variant.cfg, warn) for variant in variants]
    parent = registry.get(parent_id) if parent_id else None
    runs: List[RunRecord] = []
    now = time.time()
    try:
        for variant, ready in zip(variants, checked, strict=True):
            # prepare also snapshots the extensions' code as queued (engine/config/extensions)
            runs.append(prepare(ready, Path(parent.run_dir) if parent else None, status=RunStatus.QUEUED,
                                preset=preset or spec.preset, created=now + variant.index * 1e-3, sweep=name, sweep_index=variant.index,
                                message="queued", parent_id=parent_id, relation=relation))
        record = spec_record(spec, variants)
        registry.add_all(runs, also=("INSERT INTO sweeps (name, created, max_parallel, spec) VALUES (?, ?, ?, ?)",
                                     (name, now, spec.max_parallel, json.dumps(record))))
    except BaseException:
        for run in runs:
            shutil.rmtree(run.run_dir, ignore_errors=True)
        raise
    return runs


def start_queued(run: RunRecord, registry: Registry) -> RunRecord:
    """Launch one queued variant, if nobody else took it first (returns the fresh record)."""
    # As start_now: the run-dir lock and this process's pid for the whole start, so a look at the
    # runs meanwhile leaves it `starting`, and a worker killed half-way is reconciled.
    lock = run_lock.hold(Path(run.run_dir))
    me = {**run.extra, "launcher": {"pid": os.getpid(), "pid_start": process_start_ticks(os.getpid())}}
    try:
        if not registry.transition(run.id, RunStatus.QUEUED, status=RunStatus.STARTING, message="starting", extra=me):
            return registry.get(run.id) or run
        run = replace(run, status=RunStatus.STARTING, message="starting", extra=me)
        try:
            cfg = run_config(run)
        except (BackendError, ConfigError, OSError) as exc:
            failed = replace(run, status=RunStatus.FAILED, ended=time.time(), message=f"launch failed: {exc}")
            return registry.save_changes(run, failed)
        run = start_prepared(run, cfg, registry)
    finally:
        run_lock.release(lock)
    if run.terminal:
        return run
    latest = registry.get(run.id)
    if latest is not None and latest.cancel_requested and not latest.terminal:
        # Cancelled while it was being started: pass the cancel on now that it has a process.
        from .run_manager import cancel_run

        return cancel_run(latest, registry=registry)
    return latest or run


# ---- the worker's lock and start-up -----------------------------------------------------------

def try_lock(name: str):
    """The sweep's worker lock (an open file holding the flock), or None if a worker holds it."""
    sweeps_dir().mkdir(parents=True, exist_ok=True)
    handle = open(lock_path(name), "a")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        return None
    return handle


def worker_running(name: str) -> bool:
    handle = try_lock(name)
    if handle is None:
        return True
    handle.close()  # closing drops the flock again
    return False


def spawn_worker(name: str) -> int:
    """Start the sweep's worker detached (own session; it forks and its parent exits, so no
    zombie stays with the caller). Returns the worker's pid (0 when one was running already);
    BackendError if it did not start."""
    sweeps_dir().mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH")) if p)
    argv = [sys.executable, "-m", "olmo_tui.core.launch.sweep_worker", name]
    try:
        proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, start_new_session=True, cwd=sweeps_dir())
    except OSError as exc:
        raise BackendError(f"could not start the sweep worker: {exc}") from exc
    first = proc.stdout.readline().decode(errors="replace").strip()
    code = proc.wait(timeout=30)
    if code == 0 and first == "busy":  # a worker runs this sweep already: nothing to start
        proc.stdout.close()
        proc.stderr.close()
        return 0
    err = proc.stderr.read().decode(errors="replace").strip()
    proc.stdout.close()
    proc.stderr.close()
    if code != 0 or not first.isdigit():
        raise BackendError(f"the sweep worker did not start: {err.splitlines()[-1] if err else 'no pid reported'}")
    return int(first)


def has_work(name: str, registry: Registry) -> bool:
    return any(not run.terminal for run in registry.of_sweep(name))


def ensure_workers(registry: Optional[Registry] = None) -> List[str]:
    """Restart the worker of every unfinished sweep that has none (it was killed, the machine
    rebooted). Returns the names restarted. Cheap when nothing is unfinished: one query."""
    registry = registry or Registry()
    try:
        names = [row["name"] for row in registry.query("SELECT name FROM sweeps WHERE ended IS NULL")]
    except RegistryError:
        return []
    restarted = []
    for name in names:
        if not has_work(name, registry):
            if not worker_running(name):  # the worker died just before recording the end
                update_sweep(name, registry, ended=time.time())
            continue
        if not worker_running(name):
            try:
                spawn_worker(name)
            except BackendError:
                continue
            restarted.append(name)
    return restarted
