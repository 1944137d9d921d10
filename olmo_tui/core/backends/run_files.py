"""The run-dir files the backends write or read on this machine, in one place: launch.json, the
launching checkout's git state, and the exit code of the rank that failed as torchrun reports it
in the log. File names and the exit record are the engine's contract (engine/run_dir.py).
Imports nothing heavy: the local wrapper, which lives for a whole run, uses it too."""

from __future__ import annotations

import os
import re
import socket
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, List, Mapping, Optional

from engine.atomic import write_json_atomic
from engine.run_dir import LAUNCH_RECORD

if TYPE_CHECKING:
    from ..runs.registry import RunRecord

REPO_ROOT = Path(__file__).resolve().parents[3]
CANCEL_REQUEST = "cancel.json"  # the local backend asks its wrapper to stop: {"grace_s", "requested"}
WORKER_EXIT = re.compile(rb"failed \(exitcode: (-?\d+)\) local_rank: (\d+)")


def git(repo: Path, *args: str, timeout_s: float = 10) -> Optional[str]:
    """`git -C repo ARGS` stripped stdout, or None where git fails or is missing."""
    try:
        out = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, timeout=timeout_s)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def git_state(repo: Path = REPO_ROOT) -> Dict[str, object]:
    """launch.json's record of the code that ran: the commit, and whether tracked files differed."""
    commit = git(repo, "rev-parse", "HEAD", timeout_s=5)
    dirty = git(repo, "status", "--porcelain", "--untracked-files=no", timeout_s=5)
    return {"commit": commit, "dirty": bool(dirty) if dirty is not None else None}


def launch_record(backend: str, run: RunRecord, argv: List[str], env: Mapping[str, str],
                  **extra: Any) -> Dict[str, Any]:
    """launch.json's common fields (backend, run and parent ids, argv, the non-secret env) plus
    the backend's own."""
    return {"backend": backend, "run_id": run.id, "parent_run_id": run.parent_id, "relation": run.relation,
            # what a registry rebuilt from the run dirs needs (runs/reconcile.py)
            "name": run.name, "preset": run.preset, "created": run.created, "sweep": run.sweep,
            "sweep_index": run.sweep_index,
            "argv": list(argv), "env": dict(env), **extra}


def local_launch_record(backend: str, run: RunRecord, argv: List[str], env: Mapping[str, str],
                        secret_names: List[str], **extra: Any) -> Dict[str, Any]:
    """launch.json of a run started from this machine's checkout (local, SLURM)."""
    return launch_record(backend, run, argv, env, git=git_state(REPO_ROOT), host=socket.gethostname(),
                         secret_env_names=sorted(secret_names), **extra)


def write_launch_record(run_dir: Path, record: Dict[str, Any]) -> None:
    write_json_atomic(Path(run_dir) / LAUNCH_RECORD, record)


def rank_exit_code(log_path: Path, window: int = 256 << 10) -> Optional[int]:
    """The exit code torchrun reported for the first failed worker (local rank 0 preferred)."""
    try:
        with open(log_path, "rb") as f:
            f.seek(max(0, f.seek(0, os.SEEK_END) - window))
            tail = f.read()
    except OSError:
        return None
    found = [(int(rank), int(code)) for code, rank in WORKER_EXIT.findall(tail)]
    if not found:
        return None
    code = next((c for r, c in found if r == 0), found[0][1])
    return 128 - code if code < 0 else code  # killed by signal N -> 128 + N, as a shell says
