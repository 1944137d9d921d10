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
from engine.run_dir import CONFIG_FILE, LOG_FILE, read_exit_record
from engine.run_marker import process_start_ticks  # re-exported: one /proc reader for engine and app

from ..runs import tailing
from ..runs.registry import RunRecord
from .base import BackendError, RunStatus
from .run_files import CANCEL_REQUEST, REPO_ROOT, local_launch_record, write_launch_record

GRACEFUL_EXIT_CODES = (130, 143)  # the engine stopped on SIGINT / SIGTERM after a final checkpoint



def status_for_exit(exit_code: int, cancel_requested: bool) -> str:
    if exit_code == 0:
        return RunStatus.SUCCEEDED
    if exit_code in GRACEFUL_EXIT_CODES or cancel_requested:
        return RunStatus.CANCELLED
    return RunStatus.FAILED


class LocalBackend:
    name = "local"

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

    def _alive(self, run: RunRecord) -> bool:
        if not run.pid:
            return False
        ticks = process_start_ticks(run.pid)
        return ticks is not None and (run.pid_start is None or ticks == run.pid_start)

    def refresh(self, run: RunRecord) -> RunRecord:
        if run.terminal:
            return run
        run_dir = Path(run.run_dir)
        changes: Dict[str, object] = {}
        changes.update(tailing.progress_of(run_dir))
        exit_record = read_exit_record(run_dir)
        if exit_record is not None:
            code = int(exit_record["exit_code"])
            cancelled = bool(run.cancel_requested or exit_record.get("cancelled"))
            changes.update(exit_code=code, ended=exit_record.get("ended") or time.time(),
                           status=status_for_exit(code, cancelled))
            if changes["status"] == RunStatus.FAILED:
                changes["message"] = tailing.failure_line(run_dir / LOG_FILE) or f"exited with code {code}"
            elif changes["status"] == RunStatus.CANCELLED:
                changes["message"] = "stopped on request" if cancelled else f"stopped by a signal (exit code {code})"
        elif run.host == socket.gethostname() and run.pid and not self._alive(run):
            # Re-read: the wrapper may have written exit.json between the two looks.
            if read_exit_record(run_dir) is not None:
                return self.refresh(run)
            changes.update(status=RunStatus.LOST, ended=time.time(),
                           message="the process vanished without recording an exit code")
        return replace(run, **changes)

    def cancel(self, run: RunRecord, grace_s: float) -> RunRecord:
        if run.terminal:
            return run
        run_dir = Path(run.run_dir)
        write_json_atomic(run_dir / CANCEL_REQUEST, {"grace_s": grace_s, "requested": time.time()})
        run = replace(run, cancel_requested=time.time(), message="stopping (SIGTERM sent)")
        if run.host != socket.gethostname():
            raise BackendError(f"run {run.id} runs on host {run.host}; cancel it there")
        if self._alive(run):
            try:
                os.kill(run.pid, signal.SIGTERM)
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



