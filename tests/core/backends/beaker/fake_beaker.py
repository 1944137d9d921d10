"""A fake Beaker server for the tests: beaker-py's own gRPC servicer base class (over TLS, like
the real service) plus a tiny HTTP server for the one REST call the launcher makes
(`POST /api/v3/workspaces/{id}/experiments`).

It keeps a small stateful model (experiments -> tasks -> jobs -> log lines) that a test scripts
step by step: `start_job`, `log`, `finish_job`, `preempt`. Everything the client sent is kept for
assertions: the specs, the auth headers and metadata, the cancelled workload ids.
"""

from __future__ import annotations

import json
import threading
import time
from concurrent import futures
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Dict, List, Optional

import grpc
from beaker import beaker_pb2 as pb2
from beaker import beaker_pb2_grpc
from google.protobuf.timestamp_pb2 import Timestamp

S = pb2.WorkloadStatus
WORKSPACES = {("ai2", "olmo-tui-tests"): "ws-1"}
USER = pb2.User(id="u-1", name="tester", display_name="Tester")


def _now() -> Timestamp:
    ts = Timestamp()
    ts.FromNanoseconds(time.time_ns())
    return ts


@dataclass
class FakeJob:
    id: str
    task_id: str
    rank: int
    replicas: int
    created: Timestamp = field(default_factory=_now)
    status: int = S.STATUS_QUEUED
    scheduled: Optional[Timestamp] = None
    started: Optional[Timestamp] = None
    finalized: Optional[Timestamp] = None
    canceled_code: int = 0
    exit_code: Optional[int] = None
    message: str = ""
    logs: List[pb2.JobLog] = field(default_factory=list)

    def to_pb(self, workload_id: str) -> pb2.Job:
        status = pb2.JobStatus(status=self.status, created=self.created, message=self.message)
        if self.scheduled is not None or self.started is not None:
            status.scheduled.CopyFrom(self.scheduled or self.started)
        if self.started is not None:
            status.started.CopyFrom(self.started)
        if self.finalized is not None:
            status.exited.CopyFrom(self.finalized)
            status.finalized.CopyFrom(self.finalized)
        if self.canceled_code:
            status.canceled.CopyFrom(self.finalized or _now())
            status.canceled_code = self.canceled_code
        if self.exit_code is not None:
            status.exit_code = self.exit_code
        job = pb2.Job(id=self.id, task_id=self.task_id, workload_id=workload_id, status=status)
        job.system_details.replica_group_details.CopyFrom(pb2.ReplicaGroupDetails(
            id="rg-1", size=self.replicas, rank=self.rank, is_leader_replica=self.rank == 0))
        return job


@dataclass
class FakeExperiment:
    id: str
    name: str
    workspace_id: str
    spec: dict
    task_ids: List[str]
    jobs: Dict[str, List[FakeJob]] = field(default_factory=dict)  # task id -> jobs, oldest first
    canceled: bool = False

    def latest(self, task_id: str) -> FakeJob:
        return self.jobs[task_id][-1]

    def status(self) -> int:
        leader = self.latest(self.task_ids[0])
        if self.canceled:
            return S.STATUS_CANCELED
        return leader.status

    def to_workload(self) -> pb2.Workload:
        exp = pb2.Experiment(id=self.id, name=self.name, workspace_id=self.workspace_id,
                             author_id=USER.id, description=self.spec.get("description") or "")
        for i, task_id in enumerate(self.task_ids):
            exp.tasks.append(pb2.Task(id=task_id, experiment_id=self.id, name=f"task-{i}",
                                      status=self.latest(task_id).status))
        return pb2.Workload(experiment=exp, status=self.status())


class FakeBeakerState:
    """The model, guarded by one condition variable (log followers wait on it)."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.experiments: Dict[str, FakeExperiment] = {}
        self.specs: List[dict] = []
        self.created_names: List[Optional[str]] = []
        self.cancelled_ids: List[str] = []
        self.rpc_auth: List[str] = []
        self.http_auth: List[str] = []
        # Secrets of the test workspace. Only their names may ever be asked for (GetSecret); the
        # values stay here, and tests check that none of them shows up anywhere.
        self.secrets: Dict[str, str] = {"team-hf-token": "hf_fake-beaker-side-secret-9d2", "team-hf": "hf_other-4c1"}
        self._counter = 0

    def _next(self, prefix: str) -> str:
        self._counter += 1
        return f"{prefix}{self._counter:04d}"

    # ---- called by the servers ----------------------------------------------------------
    def create(self, workspace_id: str, name: Optional[str], spec: dict) -> str:
        with self.cond:
            exp_id = self._next("01EXP")
            task = spec["tasks"][0]
            replicas = int(task.get("replicas") or 1)
            task_ids = [self._next("01TASK") for _ in range(replicas)]
            exp = FakeExperiment(exp_id, name or exp_id, workspace_id, spec, task_ids)
            for rank, task_id in enumerate(task_ids):
                exp.jobs[task_id] = [FakeJob(self._next("01JOB"), task_id, rank, replicas)]
            self.experiments[exp_id] = exp
            self.specs.append(spec)
            self.created_names.append(name)
            self.cond.notify_all()
            return exp_id

    def job_by_id(self, job_id: str):
        for exp in self.experiments.values():
            for jobs in exp.jobs.values():
                for job in jobs:
                    if job.id == job_id:
                        return exp, job
        return None, None

    # ---- scripting API for tests ---------------------------------------------------------
    def only_experiment(self) -> FakeExperiment:
        assert len(self.experiments) == 1, list(self.experiments)
        return next(iter(self.experiments.values()))

    def schedule_job(self, exp_id: str) -> None:
        """Placed on a node, container not running yet."""
        with self.cond:
            for task_id in self.experiments[exp_id].task_ids:
                job = self.experiments[exp_id].latest(task_id)
                job.status, job.scheduled = S.STATUS_INITIALIZING, _now()
            self.cond.notify_all()

    def start_job(self, exp_id: str) -> None:
        with self.cond:
            for task_id in self.experiments[exp_id].task_ids:
                job = self.experiments[exp_id].latest(task_id)
                job.status, job.started = S.STATUS_RUNNING, _now()
            self.cond.notify_all()

    def log(self, exp_id: str, *lines: str) -> None:
        with self.cond:
            job = self.experiments[exp_id].latest(self.experiments[exp_id].task_ids[0])
            for line in lines:
                job.logs.append(pb2.JobLog(timestamp=_now(), message=line.encode()))
                time.sleep(0.000001)  # distinct timestamps, so `since` resumption is exact
            self.cond.notify_all()

    def finish_job(self, exp_id: str, exit_code: int, rank: Optional[int] = None) -> None:
        """Every replica exits with `exit_code`; or only replica `rank` does, and Beaker cancels
        the others ("sibling task failed", as propagateFailure asks)."""
        with self.cond:
            for task_rank, task_id in enumerate(self.experiments[exp_id].task_ids):
                job = self.experiments[exp_id].latest(task_id)
                job.finalized = _now()
                if rank is not None and task_rank != rank:
                    job.status, job.message = S.STATUS_CANCELED, "a sibling task failed"
                    job.canceled_code = pb2.CancelationCode.CANCELATION_CODE_SIBLING_TASK_FAILED
                    continue
                job.status = S.STATUS_SUCCEEDED if exit_code == 0 else S.STATUS_FAILED
                job.exit_code = exit_code
                if exit_code:
                    job.message = f"exited with code {exit_code}"
            self.cond.notify_all()

    def preempt(self, exp_id: str, replacement: bool = True) -> None:
        """The current jobs are preempted; Beaker queues a new job for each task."""
        with self.cond:
            exp = self.experiments[exp_id]
            for rank, task_id in enumerate(exp.task_ids):
                job = exp.latest(task_id)
                job.status, job.finalized = S.STATUS_CANCELED, _now()
                job.canceled_code = pb2.CancelationCode.CANCELATION_CODE_SYSTEM_PREEMPTION
                job.message = "preempted by a higher-priority job"
                if replacement:
                    exp.jobs[task_id].append(FakeJob(self._next("01JOB"), task_id, rank, len(exp.task_ids)))
            self.cond.notify_all()


class FakeBeakerServicer(beaker_pb2_grpc.BeakerServicer):
    def __init__(self, state: FakeBeakerState):
        self.state = state

    def _auth(self, context) -> None:
        meta = dict(context.invocation_metadata())
        self.state.rpc_auth.append(meta.get("authorization", ""))
        if meta.get("authorization") != f"bearer {FakeBeaker.TOKEN}":
            context.abort(grpc.StatusCode.PERMISSION_DENIED, "bad token")

    def ResolveOrganizationName(self, request, context):
        self._auth(context)
        return pb2.ResolveOrganizationNameResponse(organization_id="org-" + request.organization_name)

    def ResolveWorkspaceName(self, request, context):
        self._auth(context)
        ws = WORKSPACES.get((request.owner_name, request.workspace_name))
        if ws is None:
            context.abort(grpc.StatusCode.NOT_FOUND, "workspace not found")
        return pb2.ResolveWorkspaceNameResponse(workspace_id=ws)

    def GetWorkspace(self, request, context):
        self._auth(context)
        if request.workspace_id not in WORKSPACES.values():
            context.abort(grpc.StatusCode.NOT_FOUND, "workspace not found")
        return pb2.GetWorkspaceResponse(workspace=pb2.Workspace(id=request.workspace_id, name="olmo-tui-tests"))

    def GetSecret(self, request, context):
        self._auth(context)
        if request.secret_name not in self.state.secrets:
            context.abort(grpc.StatusCode.NOT_FOUND, "secret not found")
        return pb2.GetSecretResponse(secret=pb2.Secret(name=request.secret_name))

    def GetUser(self, request, context):
        self._auth(context)
        return pb2.GetUserResponse(user=USER)

    def GetWorkload(self, request, context):
        self._auth(context)
        with self.state.cond:
            exp = self.state.experiments.get(request.workload_id)
            if exp is None:
                context.abort(grpc.StatusCode.NOT_FOUND, "workload not found")
            return pb2.GetWorkloadResponse(workload=exp.to_workload())

    def ListJobs(self, request, context):
        self._auth(context)
        opts = request.options
        with self.state.cond:
            jobs = []
            for exp in self.state.experiments.values():
                for task_id, task_jobs in exp.jobs.items():
                    if opts.task_id and task_id != opts.task_id:
                        continue
                    for job in task_jobs:
                        if opts.HasField("finalized") and opts.finalized != (job.finalized is not None):
                            continue
                        jobs.append(job.to_pb(exp.id))
            jobs.sort(key=lambda j: j.status.created.ToNanoseconds(),
                      reverse=opts.sort_clause.sort_order != pb2.SortOrder.SORT_ORDER_ASCENDING)
            if opts.page_size:
                jobs = jobs[: opts.page_size]
            return pb2.ListJobsResponse(jobs=jobs)  # one page: empty next_page_token ends paging

    def GetJob(self, request, context):
        self._auth(context)
        with self.state.cond:
            exp, job = self.state.job_by_id(request.job_id)
            if job is None:
                context.abort(grpc.StatusCode.NOT_FOUND, "job not found")
            return pb2.GetJobResponse(job=job.to_pb(exp.id))

    def StreamJobLogs(self, request, context):
        self._auth(context)
        since = request.since.ToNanoseconds() if request.HasField("since") else 0
        sent = 0
        while context.is_active():
            with self.state.cond:
                exp, job = self.state.job_by_id(request.job_id)
                if job is None:
                    context.abort(grpc.StatusCode.NOT_FOUND, "job not found")
                pending = [log for log in job.logs[sent:] if log.timestamp.ToNanoseconds() >= since]
                sent = len(job.logs)
                done = job.finalized is not None
                if not pending and not done and request.follow:
                    self.state.cond.wait(timeout=0.2)
                    continue
            yield from pending
            if done or not request.follow:
                return

    def CancelWorkloads(self, request, context):
        self._auth(context)
        with self.state.cond:
            for wid in request.workload_ids:
                exp = self.state.experiments.get(wid)
                if exp is None:
                    context.abort(grpc.StatusCode.NOT_FOUND, f"workload {wid} not found")
                exp.canceled = True
                for task_id in exp.task_ids:
                    job = exp.latest(task_id)
                    if job.finalized is None:
                        job.status, job.finalized = S.STATUS_CANCELED, _now()
                        job.canceled_code = pb2.CancelationCode.CANCELATION_CODE_MANUAL
                self.state.cancelled_ids.append(wid)
            self.state.cond.notify_all()
        return pb2.CancelWorkloadsResponse(workload_ids=list(request.workload_ids))


class FakeBeaker:
    """Both servers on 127.0.0.1; `rpc_address` / `agent_address` point beaker-py at them."""

    TOKEN = "fake-beaker-token-6b1f"

    def __init__(self, cert_pem: bytes, key_pem: bytes):
        self.state = FakeBeakerState()
        self._grpc = grpc.server(futures.ThreadPoolExecutor(max_workers=16))
        beaker_pb2_grpc.add_BeakerServicer_to_server(FakeBeakerServicer(self.state), self._grpc)
        creds = grpc.ssl_server_credentials([(key_pem, cert_pem)])
        self.rpc_port = self._grpc.add_secure_port("127.0.0.1:0", creds)
        self._http = ThreadingHTTPServer(("127.0.0.1", 0), _make_http_handler(self.state))
        self._http.daemon_threads = True
        self._http_thread = threading.Thread(target=self._http.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def rpc_address(self) -> str:
        return f"localhost:{self.rpc_port}"  # the test certificate is issued for localhost

    @property
    def agent_address(self) -> str:
        return f"http://127.0.0.1:{self._http.server_address[1]}"

    def start(self) -> "FakeBeaker":
        self._grpc.start()
        self._http_thread.start()
        return self

    def stop(self) -> None:
        """Both servers go away (their ports then refuse connections); safe to call twice."""
        if getattr(self, "_stopped", False):
            return
        self._stopped = True
        self._grpc.stop(grace=0).wait(5)
        self._http.shutdown()
        self._http.server_close()


def _make_http_handler(state: FakeBeakerState):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):  # keep test output quiet
            pass

        def do_POST(self):
            from urllib.parse import parse_qs, urlparse

            url = urlparse(self.path)
            parts = url.path.strip("/").split("/")
            state.http_auth.append(self.headers.get("Authorization", ""))
            if self.headers.get("Authorization") != f"Bearer {FakeBeaker.TOKEN}":
                return self._reply(403, {"message": "bad token"})
            if parts[:3] != ["api", "v3", "workspaces"] or parts[4:] != ["experiments"]:
                return self._reply(404, {"message": "no such route"})
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
            name = parse_qs(url.query).get("name", [None])[0]
            exp_id = state.create(parts[3], name, body)
            self._reply(200, {"id": exp_id})

        def _reply(self, code: int, payload: dict) -> None:
            data = json.dumps(payload).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    return Handler
