"""Runs started by `olmo-train` itself, found in the runs root and added to the registry.

The app's launcher records its runs as it starts them. `olmo-train NAME` trains in
<runs root>/NAME without olmo_tui (the engine never imports it) and leaves engine_run.json at
start and exit.json at the end (engine/run_marker.py). Every look at the runs (`olmo-tui runs`,
the Runs screen, a RUN lookup) first calls `discover_engine_runs`: a run dir with a marker that
no record points at becomes a local run (its pid and the pid's start time from the marker, so
the local backend's refresh tells running, finished and vanished apart as for its own runs);
rerunning the same NAME (a resume) starts the same record over with the new process.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Dict, List, Optional

from engine.run_dir import FORGOTTEN_MARKER, START_MARKER

from .registry import Registry, RunRecord, runs_root
from .run_status import RunStatus


def _read_marker(run_dir: Path) -> Optional[dict]:
    try:
        marker = json.loads((run_dir / START_MARKER).read_text())
    except (OSError, ValueError):
        return None
    needed = {"run_name": str, "pid": int, "started": (int, float), "host": str}
    ok = isinstance(marker, dict) and all(isinstance(marker.get(k), t) for k, t in needed.items())
    return marker if ok else None


def _record(run_dir: Path, marker: dict, taken: set) -> RunRecord:
    run_id = run_dir.name if run_dir.name not in taken else f"{run_dir.name}-{int(marker['started'])}"
    return RunRecord(
        id=run_id, name=marker["run_name"], backend="local", run_dir=str(run_dir), status=RunStatus.RUNNING,
        host=marker["host"], pid=marker["pid"], pid_start=marker.get("pid_start"), created=marker["started"],
        started=marker["started"], argv=list(marker.get("argv") or []),  # steps: from metrics.jsonl
        extra={"started_by": "olmo-train"},
    )


def discover_engine_runs(registry: Registry, root: Optional[Path] = None) -> List[RunRecord]:
    """Add (or restart) the records of olmo-train runs under the runs root, and record launched
    run dirs that no record points at (reconcile.py); returns them."""
    from .reconcile import reconcile_run_dirs

    root = root or runs_root()
    return _discover(registry, root) + reconcile_run_dirs(registry, root)


def _discover(registry: Registry, root: Path) -> List[RunRecord]:
    try:
        candidates = [child for child in root.iterdir()
                      if (child / START_MARKER).is_file() and not (child / FORGOTTEN_MARKER).exists()]
    except OSError:  # no runs root yet
        return []
    if not candidates:
        return []
    known: Dict[str, RunRecord] = {}
    for run in registry.all():
        known.setdefault(str(Path(run.run_dir)), run)
    taken = {run.id for run in known.values()}
    found = []
    for run_dir in sorted(candidates):
        marker = _read_marker(run_dir)
        if marker is None:
            continue
        existing = known.get(str(run_dir))
        if existing is None:
            record = _record(run_dir, marker, taken)
            registry.add(record)
            taken.add(record.id)
            found.append(record)
        elif existing.extra.get("started_by") == "olmo-train" and marker["started"] > (existing.started or 0):
            # The same NAME ran again (a resume): the record follows the new process.
            fresh = replace(existing, status=RunStatus.RUNNING, pid=marker["pid"], pid_start=marker.get("pid_start"),
                            host=marker["host"], started=marker["started"], ended=None, exit_code=None,
                            message=None, argv=list(marker.get("argv") or existing.argv))
            found.append(registry.save_changes(existing, fresh))
    return found
