"""SLURM backend: the job script (script.py) submitted with `sbatch --parsable`, followed with
squeue / scontrol / sacct (commands.py), stopped with scancel.

The run dir must be on a filesystem the nodes share with this machine (launch.slurm.shared_paths):
the job writes stdout.log, metrics.jsonl, checkpoints/ and exit.json there, and this side reads
them exactly as for a local run, so the monitor, `olmo-tui logs` and `--resume` work unchanged.
The registry row keeps the job id in workload_id and SLURM's own view in extra (state,
partition, nodes), shown by the runs table.

Cancel is graceful first: `scancel --signal=USR1` reaches only the job's steps (the ranks checkpoint
and exit 138); once the grace period has passed, the next look (refresh) sends a plain `scancel`
(SIGTERM, then SIGKILL after the cluster's KillWait). SLURM does the waiting, so a closed app
loses nothing but that hard stop.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Dict, Iterator, List, Mapping, Optional, Tuple

from engine.run_dir import LOG_FILE, read_exit_record

from ...runs import tailing
from ...runs.registry import RunRecord
from ..base import BackendError, RunStatus
from ..run_files import REPO_ROOT, local_launch_record, rank_exit_code, write_launch_record
from . import commands
from .script import STOP_SIGNAL, build_script, torchrun_argv
from .shared import files_seen_here, shared_paths_error, unshared_paths
from .status import active_status, ended_status, is_active, label

SCRIPT_NAME = "job.sbatch"
LOOK_EVERY_S = 2.0  # follow_logs asks SLURM whether the job is still there at most this often


class SlurmBackend:
    name = "slurm"
    description = "a SLURM job script submitted with sbatch; the run dir on a filesystem the nodes share"
    sees_local_files = True
    rechecks_lost = False
    spec_file = None  # the job script is kept as job.sbatch; --dry-run prints it

    def __init__(self, python: Optional[str] = None, engine_module: str = "engine"):
        self.python = python or sys.executable
        self.engine_module = engine_module

    def preflight(self, cfg, run_dir: Path) -> List[str]:
        """The shared-filesystem rule (a config error), then the engine's own checks when this
        machine sees the job's files as the nodes will; node-local or ${VAR} paths are the
        nodes' to check (the engine's pre-flight runs there too)."""
        problem = shared_paths_error(cfg, run_dir)
        if problem is not None:
            raise problem
        if files_seen_here(cfg):
            from engine.preflight import preflight_checks

            preflight_checks(cfg, run_dir, check_run_dir=False)
        return []

    def dry_run(self, cfg, run_id: str, run_dir: Path, as_json: bool) -> Tuple[str, str]:
        script = self.script(run_id, run_dir, cfg)
        out = json.dumps({"script": script, "config": cfg.model_dump(mode="json")}, indent=2) + "\n" if as_json \
            else script
        return out, (f"# SLURM job script for {cfg.launch.slurm.nodes} node(s) x {cfg.launch.nproc_per_node} rank(s) "
                     f"(the run id is assigned at launch); submitted with: sbatch --parsable {run_dir}/{SCRIPT_NAME}")

    def table_cell(self, run: RunRecord) -> str:
        return label(run)

    def _python(self, cfg) -> str:
        return cfg.launch.slurm.python or self.python

    def job_env(self, run_id: str, cfg) -> Dict[str, str]:
        """Plain variables the script exports (no secrets: the script is a file)."""
        env = {"OLMO_TUI_RUN_ID": run_id, "PYTHONUNBUFFERED": "1",
               "PYTHONPATH": str(REPO_ROOT)}  # the engine package, as for local runs
        env.update(cfg.launch.debug_env())
        return env

    def script(self, run_id: str, run_dir: Path, cfg) -> str:
        return build_script(cfg, run_id, run_dir, self._python(cfg), self.job_env(run_id, cfg), self.engine_module)

    def command(self, run: RunRecord, cfg) -> List[str]:
        """What each node runs (after the script set the rendezvous variables)."""
        return torchrun_argv(cfg, Path(run.run_dir), self._python(cfg), self.engine_module)

    def launch(self, run: RunRecord, cfg, secrets: Mapping[str, str]) -> RunRecord:
        run_dir = Path(run.run_dir)
        outside = unshared_paths(cfg, run_dir)
        if outside:
            raise BackendError(f"{outside[0]} is not under launch.slurm.shared_paths "
                               f"({', '.join(cfg.launch.slurm.shared_paths) or 'none set'}): the nodes could not "
                               "write it or a requeued job could not resume from it")
        script_path = run_dir / SCRIPT_NAME
        script_path.write_text(self.script(run.id, run_dir, cfg))
        argv = ["sbatch", "--parsable", str(script_path)]
        write_launch_record(run_dir, local_launch_record(self.name, run, argv, self.job_env(run.id, cfg), list(secrets),
                                                         node_command=self.command(run, cfg)))
        # Secrets reach the job through sbatch's environment (exported to the job by default),
        # never through the script file.
        job_id = commands.submit(str(script_path), env={**os.environ, **secrets})
        extra = {**run.extra, "job_id": job_id, "partition": cfg.launch.slurm.partition, "state": "PENDING"}
        return replace(run, status=RunStatus.QUEUED, workload_id=job_id, argv=argv, started=time.time(),
                       host=socket.gethostname(), message=f"submitted as SLURM job {job_id}", extra=extra)

    # ---- following ------------------------------------------------------------------------
    def refresh(self, run: RunRecord) -> RunRecord:
        if run.terminal or not run.workload_id:
            return run
        run_dir = Path(run.run_dir)
        changes: Dict[str, object] = {}
        changes.update(tailing.progress_of(run_dir))
        info = commands.job_info(run.workload_id)
        extra = dict(run.extra)
        if info is not None:
            extra.update(state=info.state, partition=info.partition or extra.get("partition"),
                         nodes=info.nodes or extra.get("nodes"))
            if info.restarts is not None:
                extra["restarts"] = info.restarts
        changes["extra"] = extra
        if info is not None and is_active(info.state):
            changes["status"] = active_status(info.state)
            if info.state in ("PENDING", "REQUEUED") and info.reason:
                changes["message"] = f"{info.state.lower()}: {info.reason}"
            elif run.cancel_requested is None:
                changes["message"] = None
            self._hard_cancel_after_grace(run, extra)
            return replace(run, **changes)
        exit_record = read_exit_record(run_dir)
        code = exit_record["exit_code"] if exit_record else (info.exit_code if info else None)
        if code == 1:  # torchrun's "a worker failed": rank 0's own code says why
            code = rank_exit_code(run_dir / LOG_FILE) or code
        status, message = ended_status(info.state if info else None, code, run.cancel_requested is not None,
                                       bool(exit_record and exit_record.get("time_limit_signal")))
        if status == RunStatus.FAILED and code not in (None, 0):
            message = tailing.failure_line(run_dir / LOG_FILE) or message
        ended = exit_record.get("ended") if exit_record else None
        changes.update(status=status, exit_code=code, message=message, ended=ended or time.time())
        return replace(run, **changes)

    def _hard_cancel_after_grace(self, run: RunRecord, extra: dict) -> None:
        if run.cancel_requested is None or extra.get("hard_cancel_sent"):
            return
        if time.time() >= run.cancel_requested + float(extra.get("cancel_grace_s", 60.0)):
            commands.scancel(run.workload_id)
            extra["hard_cancel_sent"] = time.time()

    def cancel(self, run: RunRecord, grace_s: float) -> RunRecord:
        if run.terminal or not run.workload_id:
            return run
        info = commands.job_info(run.workload_id)
        extra = {**run.extra, "cancel_grace_s": grace_s}
        if info is not None and info.state == "RUNNING":
            commands.scancel(run.workload_id, STOP_SIGNAL)  # the ranks only: checkpoint, exit 138
            message = f"stopping (SIG{STOP_SIGNAL} sent; scancel after {grace_s:g} s)"
        else:  # nothing is running yet (or any more): no checkpoint to wait for
            commands.scancel(run.workload_id)
            extra["hard_cancel_sent"] = time.time()
            message = "stopping (scancel)"
        run = replace(run, cancel_requested=time.time(), message=message, extra=extra)
        return self.refresh(run)

    def follow_logs(self, run: RunRecord, stop: threading.Event, follow: bool = True) -> Iterator[str]:
        for batch in self.follow_log_batches(run, stop, follow):
            yield from batch

    def follow_log_batches(self, run: RunRecord, stop: threading.Event, follow: bool = True) -> Iterator[List[str]]:
        """The job's stdout.log in the run dir (every node's output, every attempt), until the
        job has ended; SLURM is asked at most every LOOK_EVERY_S seconds."""
        run_dir = Path(run.run_dir)
        last_look = [0.0, False]

        def finished() -> bool:
            if not follow or read_exit_record(run_dir) is not None:
                return True
            if time.monotonic() - last_look[0] >= LOOK_EVERY_S:
                info = commands.job_info(run.workload_id) if run.workload_id else None
                last_look[:] = [time.monotonic(), info is None or not is_active(info.state)]
            return bool(last_look[1])

        yield from tailing.follow_file_batches(run_dir / LOG_FILE, stop, finished)

