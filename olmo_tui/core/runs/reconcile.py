"""Launched run dirs that no registry record points at, recorded again on the next look.

Two ways to get one:
- a launch cut off half-way (the launcher killed after it made the run dir, before or after it
  wrote config.toml, before the record): nothing ran, but the dir would never be listed;
- a registry that lost its records (runs.db deleted, emptied, or set aside as corrupt by
  registry.py): every launched run dir still holds launch.json (run id, backend, argv,
  parent, name, preset), exit.json once it ended, and its run-dir lock while it lives.

A dir whose run-dir lock is held with no launch.json yet is a launch in progress (the launcher
holds the lock from mkdir until the run's own processes hold theirs): left alone. Everything
else becomes a record; the backend's refresh then says what it is now (the local backend reads
the lock and the exit records: running, finished, lost). Runs `olmo-train` started by itself
are discovery.py's (engine_run.json). Called by discovery.discover_engine_runs on every look.
"""

from __future__ import annotations

import json
import sqlite3
import sys
import time
from pathlib import Path
from typing import List, Optional

from engine import run_lock
from engine.run_dir import (CONFIG_FILE, EXIT_RECORD, FORGOTTEN_MARKER, LAUNCH_RECORD, RUN_LOCK, START_MARKER,
                            read_exit_record)

from .registry import Registry, RunRecord, runs_root
from .run_status import RunStatus, status_for_exit

# A dir without a lock to ask (a launcher killed between its mkdir and taking the lock, or a
# filesystem without flock) counts as a launch in progress this long.
UNLOCKED_GRACE_S = 60.0

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def _json(path: Path) -> Optional[dict]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _run_name(run_dir: Path) -> Optional[str]:
    try:
        with open(run_dir / CONFIG_FILE, "rb") as handle:
            name = tomllib.load(handle).get("run_name")
    except (OSError, tomllib.TOMLDecodeError):
        return None
    return name if isinstance(name, str) else None


def _record(run_dir: Path) -> Optional[RunRecord]:
    """The record a run dir implies, or None when it is no launched run's (or one in progress)."""
    launch = _json(run_dir / LAUNCH_RECORD)
    if launch is None:
        # A launcher killed between its mkdir and its lock leaves an empty dir: judged by age.
        marks = [path for path in (run_dir / CONFIG_FILE, run_dir / RUN_LOCK) if path.is_file()] or \
            ([run_dir] if not any(run_dir.iterdir()) else [])
        if not marks:
            return None  # not a launched run's dir
        created = max(path.stat().st_mtime for path in marks)
        alive = run_lock.is_alive(run_dir)
        if alive or (alive is None and time.time() - created < UNLOCKED_GRACE_S):
            return None  # a launch still going on
        # The launcher died after making the dir, before the run had a record: nothing ran.
        return RunRecord(id=run_dir.name, name=_run_name(run_dir) or run_dir.name, backend="local",
                         run_dir=str(run_dir), status=RunStatus.FAILED, created=created, ended=created,
                         message="the launch was interrupted before the run was recorded (nothing ran); launch "
                                 "it again")
    created = launch.get("created") or (run_dir / LAUNCH_RECORD).stat().st_mtime
    record = RunRecord(
        id=str(launch.get("run_id") or run_dir.name), name=launch.get("name") or _run_name(run_dir) or run_dir.name,
        backend=str(launch.get("backend") or "local"), run_dir=str(run_dir), status=RunStatus.STARTING,
        preset=launch.get("preset"), parent_id=launch.get("parent_run_id"), relation=launch.get("relation"),
        host=launch.get("host") or "", created=created, started=created, argv=list(launch.get("argv") or []),
        sweep=launch.get("sweep"), sweep_index=launch.get("sweep_index"), workload_id=launch.get("workload_id"),
        message="recorded again from its run dir",
    )
    ended = read_exit_record(run_dir, EXIT_RECORD)
    if ended is not None and record.backend != "local":  # the local backend's refresh reads it itself
        record.status = status_for_exit(int(ended["exit_code"]), bool(ended.get("cancelled")))
        record.exit_code, record.ended = int(ended["exit_code"]), ended.get("ended")
    elif record.backend != "local" and record.workload_id:
        record.status = RunStatus.RUNNING  # its backend's refresh asks the scheduler
    elif record.backend != "local":
        record.status = RunStatus.LOST
        record.message = f"recorded again from its run dir; the registry had lost its {record.backend} job"
    return record


def reconcile_run_dirs(registry: Registry, root: Optional[Path] = None) -> List[RunRecord]:
    """Record the launched run dirs under the runs root that no record points at; returns them."""
    root = root or runs_root()
    try:
        children = [child for child in root.iterdir() if child.is_dir()]
    except OSError:  # no runs root yet
        return []
    known = {str(Path(run.run_dir)) for run in registry.all()}
    added = []
    for run_dir in sorted(children):
        if str(run_dir) in known or (run_dir / START_MARKER).exists() or (run_dir / FORGOTTEN_MARKER).exists():
            continue
        record = _record(run_dir)
        if record is None:
            continue
        try:
            registry.add(record)
        except sqlite3.IntegrityError:  # another process recorded it first
            continue
        added.append(record)
    return added
