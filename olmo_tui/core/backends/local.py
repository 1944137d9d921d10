"""Local backend: torchrun on this machine, started detached through local_wrapper.py.

State lives in the run directory (docs/CONTRACTS.md): launch.json (argv, non-secret env, git
state), stdout.log, metrics.jsonl, exit.json, cancel.json. refresh() reads them plus
/proc/<pid>/stat, so a run started by another app instance or a headless command is seen the
same way, and a wrapper that vanished without exit.json is recorded as lost.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Dict, Iterator, List, Mapping, Optional

from engine.atomic import write_json_atomic
from engine import run_lock
from engine.run_dir import CONFIG_FILE, ENGINE_EXIT_RECORD, LOG_FILE, METRICS_FILE, read_exit_record
from engine.run_marker import process_start_ticks  # re-exported: one /proc reader for engine and app

from ..runs import tailing
from ..runs.registry import RunRecord
from ..runs.run_status import GRACEFUL_EXIT_CODES, status_for_exit  # noqa: F401  (re-exported)
from .base import BackendError, RunStatus
from .run_files import CANCEL_REQUEST, REPO_ROOT, local_launch_record, write_launch_record



def launcher_alive(run: RunRecord) -> bool:
    """Whether the process that is launching `run` (run_manager records it in extra) still
    runs: a run `starting` with live processes and no launcher lost it after the wrapper
    started, and is adopted as running."""
    launcher = run.extra.get("launcher") or {}
    pid, ticks = launcher.get("pid"), launcher.get("pid_start")
    return bool(pid) and process_start_ticks(pid) is not None and process_start_ticks(pid) == ticks


class LocalBackend:
    name = "local"
    # Its runs are judged from the run dir (the lock, exit records), so one recorded as lost
    # is looked at again: it may be alive after all (run_manager.refresh_run).
    rechecks_lost = True
    description = "torchrun on this machine, detached (survives the app and the terminal)"
    sees_local_files = True
    spec_file = None

    def __init__(self, python: Optional[str] = None, engine_module: str = "engine"):
        self.python = python or sys.executable
        # Tests of the launcher alone use a stand-in module that follows the same contract.
        self.engine_module = engine_module

    def command(self, run: RunRecord, cfg) -> List[str]:
        run_dir = Path(run.run_dir)
        return [
            self.python, "-m", "torch.distributed.run", "--standalone",
            "--nproc-per-node", str(cfg.launch.nproc_per_node),
            "-m", self.engine_module, cfg.run_name,
            "--config", str(run_dir / CONFIG_FILE), "--run-dir", str(run_dir),
        ]

    def launch(self, run: RunRecord, cfg, secrets: Mapping[str, str]) -> RunRecord:
        if importlib.util.find_spec("torch") is None:
            raise BackendError(f"torch is not installed for {self.python}; run `make install` first")
        run_dir = Path(run.run_dir)
        argv = self.command(run, cfg)
        visible_env = {"OLMO_TUI_RUN_ID": run.id, "PYTHONUNBUFFERED": "1"}
        visible_env.update(cfg.launch.debug_env())
        write_launch_record(run_dir, local_launch_record(self.name, run, argv, visible_env, list(secrets)))
        env = {**os.environ, **visible_env, **secrets}
        # The engine package must be importable from the run dir (the wrapper's cwd).
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH")) if p)
        wrapper = [self.python, "-m", "olmo_tui.core.backends.local_wrapper", str(run_dir), "--", *argv]
        try:
            proc = subprocess.Popen(wrapper, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, start_new_session=True, cwd=run_dir)
        except OSError as exc:
            raise BackendError(f"could not start {self.python}: {exc}") from exc
        first_line = proc.stdout.readline().strip()  # the detached wrapper's pid
        proc.stdout.close()
        err = proc.stderr.read().decode(errors="replace").strip() if proc.wait(timeout=30) else ""
        proc.stderr.close()
        if not first_line.isdigit():
            raise BackendError(f"the launcher did not start: {err.splitlines()[-1] if err else 'no pid reported'}")
        pid = int(first_line)
        return replace(
            run, status=RunStatus.RUNNING, pid=pid, pgid=proc.pid, pid_start=process_start_ticks(pid),
            argv=argv, started=time.time(), host=socket.gethostname(), message=None,
        )

    def preflight(self, cfg, run_dir: Path) -> List[str]:
        """The engine's own checks (data, paths, writable folders, W&B key): the job sees these
        very files. Creating the run dir is the launcher's job."""
        from engine.preflight import preflight_checks

        preflight_checks(cfg, run_dir, check_run_dir=False)
        return []

    def dry_run(self, cfg, run_id: str, run_dir: Path, as_json: bool) -> None:
        return None  # the resolved config says it all

    def table_cell(self, run: RunRecord) -> str:
        return self.name

    def _alive(self, run: RunRecord) -> bool:
        """The run's processes live: any holder of its run-dir lock (engine/run_lock.py), else,
        for a run dir from before the lock, its recorded wrapper pid."""
        held = run_lock.is_alive(Path(run.run_dir)) if run.host == socket.gethostname() else None
        if held is not None:
            return held
        return self._wrapper_alive(run)

    def _wrapper_alive(self, run: RunRecord) -> bool:
        if not run.pid:
            return False
        ticks = process_start_ticks(run.pid)
        return ticks is not None and (run.pid_start is None or ticks == run.pid_start)

    def refresh(self, run: RunRecord) -> RunRecord:
        """From the run dir: exit.json (the wrapper's) ends it; else the run-dir lock says whether
        any of its processes live (the wrapper, torchrun or a rank: a run whose wrapper was
        killed trains on and is followed, one marked lost that is alive is adopted again); with
        all of them gone, rank 0's own engine_exit.json gives the final state, else it is lost."""
        if run.terminal and run.status != RunStatus.LOST:
            return run
        run_dir = Path(run.run_dir)
        changes: Dict[str, object] = {}
        changes.update(tailing.progress_of(run_dir))
        exit_record = read_exit_record(run_dir)
        here = run.host == socket.gethostname()
        if exit_record is None and here and not self._alive(run):
            # Re-read: the wrapper may have written exit.json between the two looks.
            exit_record = read_exit_record(run_dir)
            if exit_record is None:
                exit_record = read_exit_record(run_dir, ENGINE_EXIT_RECORD)
                if exit_record is None:
                    if run.status == RunStatus.LOST:
                        return replace(run, **changes)
                    if run.status == RunStatus.STARTING and not (run_dir / LOG_FILE).exists():  # no wrapper ran
                        changes.update(status=RunStatus.FAILED, ended=time.time(),
                                       message="the launch was interrupted before the run started (nothing "
                                               "ran); launch it again")
                    elif (run_dir / LOG_FILE).exists() and not (run_dir / METRICS_FILE).exists():  # no step ran
                        changes.update(status=RunStatus.FAILED, ended=time.time(),
                                       message="the run's processes were killed before training started "
                                               "(nothing ran); launch it again")
                    else:
                        changes.update(status=RunStatus.LOST, ended=time.time(),
                                       message="the run's processes all ended without recording an exit code")
                    return replace(run, **changes)
        if exit_record is not None:
            code = int(exit_record["exit_code"])
            cancelled = bool(run.cancel_requested or exit_record.get("cancelled"))
            changes.update(exit_code=code, ended=exit_record.get("ended") or time.time(),
                           status=status_for_exit(code, cancelled))
            if changes["status"] == RunStatus.FAILED:
                changes["message"] = (tailing.failure_line(run_dir / LOG_FILE) or exit_record.get("message")
                                      or f"exited with code {code}")
            elif changes["status"] == RunStatus.CANCELLED:
                changes["message"] = "stopped on request" if cancelled else f"stopped by a signal (exit code {code})"
        elif here and (run.status == RunStatus.LOST or (
                run.status == RunStatus.STARTING and not launcher_alive(run))):
            # Alive after all: a launcher killed before it recorded the start, or a wrapper killed
            # under a run that trains on. Followed again like any running run.
            changes.update(status=RunStatus.RUNNING, ended=None, started=run.started or time.time(),
                           message="adopted again: its processes are alive (its launcher or wrapper was not)")
        return replace(run, **changes)

    def cancel(self, run: RunRecord, grace_s: float) -> RunRecord:
        if run.terminal and run.status != RunStatus.LOST:
            return run
        run_dir = Path(run.run_dir)
        write_json_atomic(run_dir / CANCEL_REQUEST, {"grace_s": grace_s, "requested": time.time()})
        run = replace(run, cancel_requested=time.time(), message="stopping (SIGTERM sent)")
        if run.host != socket.gethostname():
            raise BackendError(f"run {run.id} runs on host {run.host}; cancel it there")
        # The wrapper stops torchrun's workers and SIGKILLs after the grace period. Without it
        # (killed), SIGTERM goes to every holder of the run-dir lock: torchrun and the ranks,
        # which write a final checkpoint and exit.
        targets = [run.pid] if self._wrapper_alive(run) else run_lock.holders(run_dir)
        for pid in targets:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        return self.refresh(run)

    def follow_logs(self, run: RunRecord, stop: threading.Event, follow: bool = True) -> Iterator[str]:
        for batch in self.follow_log_batches(run, stop, follow):
            yield from batch

    def follow_log_batches(self, run: RunRecord, stop: threading.Event, follow: bool = True) -> Iterator[List[str]]:
        """follow_logs in lists of lines (the monitor's fast path for a very busy log)."""
        run_dir = Path(run.run_dir)

        def finished() -> bool:
            if not follow:
                return True
            return read_exit_record(run_dir) is not None or (run.host == socket.gethostname() and not self._alive(run))

        yield from tailing.follow_file_batches(run_dir / LOG_FILE, stop, finished)



