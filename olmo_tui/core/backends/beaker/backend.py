"""BeakerBackend: the run manager's Backend protocol (backends/base.py) on a Beaker cluster.

launch: spec (spec.py) -> `experiment.create` (REST POST + GetWorkload); refresh: the newest
job of each task -> RunStatus (status.py), plus the latest `[metrics]` line of the leader's
log for the runs table; cancel: `workload.cancel`; follow_logs: the leader's jobs one after
the other (a preempted job's replacement is followed), each streamed by its own client that
is closed to stop it. Every unary call goes through BeakerClient.call (a time limit).

This module imports beaker-py only inside methods: `olmo-tui --dry-run` and the runs table of
local runs never load grpc.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Mapping, Optional, Tuple

from engine.atomic import write_json_atomic
from engine.config import ConfigError
from engine.run_dir import parse_metrics_line

from ..base import BackendError, RunStatus
from ..run_files import launch_record, write_launch_record
from .client import BeakerClient, BeakerNotFound
from .git_state import REPO_ROOT, read_git_state, require_clean
from .spec import BuiltSpec, beaker_settings, build_spec

MARK = "[olmo-tui]"  # prefix of the lines the follower adds to a job's own log
SPEC_FILE = "beaker-spec.json"
STARTED_POLL_S = 2.0  # how often to look whether a queued job has started
METRICS_TAIL_LINES = 200  # refresh() reads this many last log lines for the latest metrics
# The runs table and the monitor ask every second or faster; Beaker is asked at most this often
# per run (the run is returned unchanged in between).
MIN_REFRESH_S = 3.0
DEFAULT_TIMEOUT_S = 15.0  # one Beaker call; beaker-py itself would wait forever on a dead server




class BeakerBackend:
    name = "beaker"
    description = "a Beaker experiment (one job per node); its files live in the job's container"
    sees_local_files = False
    rechecks_lost = False
    spec_file = SPEC_FILE

    def __init__(self, client: Optional[BeakerClient] = None, repo: Path = REPO_ROOT,
                 refresh_timeout_s: Optional[float] = None, launch_timeout_s: Optional[float] = None,
                 poll_s: float = STARTED_POLL_S, retry_s: float = 5.0, min_refresh_s: float = MIN_REFRESH_S):
        # $OLMO_TUI_BEAKER_TIMEOUT (seconds) bounds every call; launching gets 3x that.
        try:
            limit = float(os.environ.get("OLMO_TUI_BEAKER_TIMEOUT") or DEFAULT_TIMEOUT_S)
        except ValueError:
            raise BackendError("OLMO_TUI_BEAKER_TIMEOUT must be a number of seconds") from None
        self.client = client or BeakerClient(timeout_s=limit)
        self.repo = Path(repo)
        self.refresh_timeout_s = refresh_timeout_s or limit
        self.launch_timeout_s = launch_timeout_s or 3 * limit
        self.poll_s = poll_s
        self.retry_s = retry_s  # follow_logs: pause before trying an unreachable Beaker again
        self.min_refresh_s = min_refresh_s
        self._last_look: Dict[str, float] = {}  # run id -> monotonic time of its last refresh

    # ---- spec ---------------------------------------------------------------------------

    def build(self, run_id: str, cfg) -> BuiltSpec:
        """The exact spec a launch would submit. ConfigError (exit 2) for a dirty tree or a
        checkout without a remote; nothing is contacted."""
        bk = beaker_settings(cfg)
        git = None
        if not bk.code_in_image:
            git = read_git_state(self.repo, bk.git_ref)
            require_clean(git, bk.allow_dirty)
        return build_spec(cfg, run_id, git)

    def preflight(self, cfg, run_dir: Path) -> List[str]:
        """The spec builds (a dirty tree or a checkout without a remote: ConfigError); the
        warnings are settings a Beaker job would silently ignore or lose."""
        from .spec import spec_warnings

        self.build(run_dir.name, cfg)
        return spec_warnings(cfg)

    def dry_run(self, cfg, run_id: str, run_dir: Path, as_json: bool) -> Tuple[str, str]:
        """The exact spec a launch would submit (JSON), and each node's command."""
        import json
        import shlex

        built = self.build(run_id, cfg)
        spec = built.to_json()
        out = {"experiment_name": built.name, "workspace": built.workspace, "command": built.command,
               "spec": spec} if as_json else spec
        return json.dumps(out, indent=2) + "\n", (
            f"# Beaker experiment {built.name} (the run id is assigned at launch) in workspace "
            f"{built.workspace or '(your default)'}; each node runs:\n{shlex.join(built.command)}")

    def table_cell(self, run) -> str:
        return self.name

    def follow_log_batches(self, run, stop: threading.Event, follow: bool = True) -> Iterator[List[str]]:
        from ...runs.tailing import batched

        return batched(self.follow_logs(run, stop, follow), stop)

    def command(self, run, cfg) -> List[str]:
        from .spec import node_command

        return node_command()

    # ---- launch -------------------------------------------------------------------------

    def launch(self, run, cfg, secrets: Mapping[str, str]):
        # `secrets` holds values from this machine's environment (for local runs). On Beaker,
        # values never leave Beaker: the spec names secrets (launch.beaker.secrets) and the
        # values given here are deliberately not used, nor written anywhere.
        del secrets
        bk = beaker_settings(cfg)
        try:
            built = self.build(run.id, cfg)
        except ConfigError as exc:  # dirty tree, no remote: the CLI checks first (exit 2); the app shows this
            raise BackendError("; ".join(str(issue) for issue in exc.issues)) from None
        run_dir = Path(run.run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        spec_json = built.to_json()
        write_json_atomic(run_dir / SPEC_FILE, spec_json)
        env = {e["name"]: e["value"] for e in spec_json["tasks"][0]["envVars"] if "value" in e}
        record = launch_record(self.name, run, built.command, env, experiment_name=built.name, workspace=bk.workspace,
                               secret_names={s.env_var: s.secret for s in bk.secrets}, git=self._git_json(cfg),
                               spec_file=SPEC_FILE)
        write_launch_record(run_dir, record)

        def create(beaker):
            from beaker.exceptions import BeakerExperimentConflict, BeakerSecretNotFound

            for secret in bk.secrets:  # metadata only: the value is never read
                try:
                    beaker.secret.get(secret.secret, workspace=bk.workspace)
                except BeakerSecretNotFound:
                    raise BackendError(
                        f"launch.beaker.secrets: Beaker has no secret {secret.secret!r} (for ${secret.env_var}) in "
                        f"workspace {bk.workspace or '(your default)'}; create it with `beaker secret write "
                        f"{secret.secret}`") from None
            name = built.name
            for attempt in range(3):
                try:
                    workload = beaker.experiment.create(spec=built.spec, name=name, workspace=bk.workspace)
                    return workload, beaker.workload.url(workload)
                except BeakerExperimentConflict:
                    name = f"{built.name}-{attempt + 2}"
            raise BackendError(f"Beaker already has experiments named {built.name}, -2 and -3")

        try:
            workload, url = self.client.call(create, "creating the experiment", timeout_s=self.launch_timeout_s)
        except BackendError as exc:
            if "did not answer" in str(exc):
                raise BackendError(f"{exc}. The experiment may exist anyway: look for {built.name} in "
                                   f"workspace {bk.workspace or '(default)'}") from None
            raise
        workload_id = workload.experiment.id
        record.update(workload_id=workload_id, url=url)
        write_launch_record(run_dir, record)
        extra = {**run.extra, "url": url, "experiment_name": workload.experiment.name or built.name,
                 "workspace": bk.workspace, "preemptions": 0}
        return replace(run, status=RunStatus.QUEUED, workload_id=workload_id, argv=built.command,
                       started=time.time(), message=f"submitted to Beaker: {url}", extra=extra)

    def _git_json(self, cfg) -> Optional[dict]:
        bk = beaker_settings(cfg)
        if bk.code_in_image:
            return None
        try:
            return read_git_state(self.repo, bk.git_ref).to_json()
        except ConfigError:
            return None

    # ---- refresh ------------------------------------------------------------------------

    @staticmethod
    def _task_jobs(beaker, workload_id: str):
        """The workload and, per task, its jobs newest first (a few: one per preemption)."""
        workload = beaker.workload.get(workload_id)
        return workload, [list(beaker.job.list(task=task)) for task in workload.experiment.tasks]

    def refresh(self, run):
        if run.terminal or not run.workload_id:
            return run
        now = time.monotonic()
        if now - self._last_look.get(run.id, -1e9) < self.min_refresh_s:
            return run
        self._last_look[run.id] = now

        def look(beaker):
            from . import status

            workload, task_jobs = self._task_jobs(beaker, run.workload_id)
            state = status.run_state(workload, task_jobs)
            record = None
            leader_job = next((jobs[0] for jobs in task_jobs if jobs and jobs[0].id == state.leader.job_id), None)
            if leader_job is not None and state.leader.started is not None:
                record = self._last_metrics(beaker, leader_job)
            return state, record

        try:
            state, record = self.client.call(look, f"looking at run {run.id}", timeout_s=self.refresh_timeout_s)
        except BeakerNotFound as exc:
            return replace(run, status=RunStatus.LOST, ended=time.time(), message=str(exc))
        except BackendError as exc:
            # Unreachable or slow: keep everything we knew and say so; the next look retries.
            return replace(run, message=f"{exc} (showing the last known state)")
        from ...runs import tailing

        extra = dict(run.extra)
        extra.update(job_id=state.leader.job_id, preemptions=state.preemptions,
                     replicas=[{"rank": r.rank, "job_id": r.job_id, "status": r.status} for r in state.replicas])
        changes: Dict[str, object] = {"status": state.status, "extra": extra, "message": state.message}
        if state.started and not run.started:
            changes["started"] = state.started
        if state.status in RunStatus.TERMINAL:
            changes.update(exit_code=state.exit_code, ended=state.ended or time.time())
        if record:
            changes.update(latest_step=record.get("step"), total_steps=record.get("total_steps"),
                           summary=tailing.summary_of(record))
        return replace(run, **changes)

    def _last_metrics(self, beaker, job) -> Optional[dict]:
        last = None
        for entry in beaker.job.logs(job, tail_lines=METRICS_TAIL_LINES, follow=False):
            for line in entry.message.decode(errors="replace").splitlines():
                record = parse_metrics_line(line)
                if record is not None:
                    last = record
        return last

    # ---- cancel -------------------------------------------------------------------------

    def cancel(self, run, grace_s: float):
        """Beaker stops the containers itself (SIGTERM, then SIGKILL after its own grace
        period, in which the engine writes its final checkpoint); grace_s is not adjustable."""
        if run.terminal or not run.workload_id:
            return run
        requested = time.time()

        def cancel(beaker):
            return list(beaker.workload.cancel(beaker.workload.get(run.workload_id)))

        try:
            cancelled = self.client.call(cancel, f"cancelling run {run.id}", timeout_s=self.refresh_timeout_s)
        except BeakerNotFound as exc:
            return replace(run, status=RunStatus.LOST, ended=time.time(), message=str(exc))
        if run.workload_id not in cancelled:
            raise BackendError(f"Beaker did not confirm cancelling {run.workload_id}")
        run = replace(run, cancel_requested=requested, message="cancel sent to Beaker")
        self._last_look.pop(run.id, None)  # look again now, whatever the last look was
        return self.refresh(run)

    # ---- logs ---------------------------------------------------------------------------

    def follow_logs(self, run, stop: threading.Event, follow: bool = True) -> Iterator[str]:
        """The leader replica's log, job after job: when a job is preempted and Beaker queues a
        replacement, a `[olmo-tui]` line says so and the replacement's log follows. Never
        blocks the caller for more than ~0.2 s between checks of `stop`."""
        if not run.workload_id:
            return
        lines: "queue.Queue[object]" = queue.Queue(maxsize=10_000)
        done = object()
        stream_client: Dict[str, object] = {}
        halt = threading.Event()

        def put(item) -> None:
            while not halt.is_set():
                try:
                    lines.put(item, timeout=0.2)
                    return
                except queue.Full:
                    continue

        def produce() -> None:
            url = run.extra.get("url")
            put(f"{MARK} Beaker workload {run.workload_id}" + (f": {url}" if url else ""))
            streamed: List[str] = []
            try:
                while not halt.is_set():
                    try:
                        self._produce(run.workload_id, follow, put, halt, stream_client, streamed)
                        return
                    except BackendError as exc:
                        # Unreachable or slow Beaker: say so at once; while following, keep
                        # trying (the job itself goes on), otherwise give up.
                        put(f"{MARK} {exc}")
                        if not follow:
                            return
                        put(f"{MARK} retrying in {self.retry_s:g} s")
                        halt.wait(self.retry_s)
            except Exception as exc:  # a stream closed under us while stopping, or a Beaker error
                if not halt.is_set():
                    put(f"{MARK} log stream ended: {type(exc).__name__}: {exc}")
            finally:
                put(done)

        worker = threading.Thread(target=produce, name=f"beaker logs {run.id}", daemon=True)
        worker.start()
        try:
            while not stop.is_set():
                try:
                    item = lines.get(timeout=0.2)
                except queue.Empty:
                    continue
                if item is done:
                    return
                yield item  # type: ignore[misc]
        finally:
            halt.set()
            client = stream_client.get("client")
            if client is not None:
                client.close()  # ends a blocked stream at once (grpc CANCELLED)

    def _produce(self, workload_id: str, follow: bool, put: Callable[[object], None],
                 halt: threading.Event, holder: Dict[str, object], streamed: List[str]) -> None:
        """Stream every job of the leader not in `streamed` yet (and append it there)."""
        while not halt.is_set():
            workload, jobs = self.client.call(lambda b: self._leader_jobs(b, workload_id),
                                              "reading the job list", timeout_s=self.refresh_timeout_s)
            fresh = [job for job in jobs if job.id not in streamed]
            for job in fresh:
                if streamed:
                    put(f"{MARK} job {streamed[-1]} ended ({self._why(job_before=streamed[-1], jobs=jobs)}); "
                        f"following its replacement {job.id}")
                is_latest = job is jobs[-1]
                if follow and is_latest and not self._wait_started(job.id, halt):
                    return
                job_now = self.client.call(lambda b: b.job.get(job.id), "reading the job",
                                           timeout_s=self.refresh_timeout_s) if is_latest else job
                client = self.client.new_client()
                holder["client"] = client
                try:
                    live = follow and is_latest and not job_now.status.HasField("finalized")
                    for entry in client.job.logs(job_now, follow=live):
                        if halt.is_set():
                            return
                        for line in entry.message.decode(errors="replace").splitlines():
                            put(line)
                finally:
                    client.close()
                streamed.append(job.id)
            if not follow:
                return
            if self._finished(workload) and not fresh:
                return
            halt.wait(self.poll_s)  # the job ended: a replacement may be queued shortly

    def _leader_jobs(self, beaker, workload_id: str):
        """All jobs of the leader replica's task, oldest first."""
        from .status import leader_index

        workload, task_jobs = self._task_jobs(beaker, workload_id)
        if not task_jobs:
            return workload, []
        leader = task_jobs[leader_index([jobs[0] if jobs else None for jobs in task_jobs])]
        return workload, list(reversed(leader))

    def _wait_started(self, job_id: str, halt: threading.Event) -> bool:
        """Wait (stoppably) until the job started or ended; streaming a queued job's empty
        log would only spin."""
        while not halt.is_set():
            job = self.client.call(lambda b: b.job.get(job_id), "waiting for the job to start",
                                   timeout_s=self.refresh_timeout_s)
            if job.status.HasField("started") or job.status.HasField("finalized"):
                return True
            halt.wait(self.poll_s)
        return False

    @staticmethod
    def _finished(workload) -> bool:
        from beaker import beaker_pb2 as pb2

        from .status import FINAL_WORKLOAD_STATES

        return pb2.WorkloadStatus.Name(workload.status) in FINAL_WORKLOAD_STATES

    @staticmethod
    def _why(job_before: str, jobs) -> str:
        from .status import job_state

        for job in jobs:
            if job.id == job_before:
                state = job_state(job)
                return state.message or state.status
        return "ended"
