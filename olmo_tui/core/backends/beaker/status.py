"""Beaker job states -> the registry's RunStatus.

A Beaker experiment with N replicas has N tasks; each task has a list of jobs (a new job
appears when Beaker requeues a preempted one, or retries a failed one). The run's state is
read from the newest job of every task: any replica failed -> failed (propagate_failure
cancels the others with "sibling task failed"); any preempted -> preempted (its replacement
is followed); all succeeded -> succeeded; otherwise the least advanced replica decides.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional, Sequence

from ..base import RunStatus

# beaker_pb2.CancelationCode values, by name (compared by name to avoid importing grpc here)
# Taken back by Beaker for reasons outside the job: Beaker queues a replacement job.
PREEMPTION_CODES = {"CANCELATION_CODE_SYSTEM_PREEMPTION", "CANCELATION_CODE_USER_PREEMPTION",
                    "CANCELATION_CODE_SIBLING_TASK_PREEMPTION", "CANCELATION_CODE_NODE_UNAVAILABLE",
                    "CANCELATION_CODE_SIBLING_TASK_RETRY"}
# Someone asked for it (a person, or the idle reaper).
CANCEL_CODES = {"CANCELATION_CODE_MANUAL", "CANCELATION_CODE_IDLE"}
SIBLING_FAILED = "CANCELATION_CODE_SIBLING_TASK_FAILED"
FINAL_WORKLOAD_STATES = {"STATUS_CANCELED", "STATUS_SUCCEEDED", "STATUS_FAILED"}


@dataclass
class JobState:
    job_id: Optional[str]
    status: str
    rank: int = 0
    exit_code: Optional[int] = None
    message: str = ""
    started: Optional[float] = None
    ended: Optional[float] = None


@dataclass
class RunState:
    status: str
    leader: JobState
    replicas: List[JobState] = field(default_factory=list)
    exit_code: Optional[int] = None
    message: Optional[str] = None
    started: Optional[float] = None
    ended: Optional[float] = None
    preemptions: int = 0  # jobs of the leader replica that were preempted


def _seconds(timestamp) -> float:
    return timestamp.ToNanoseconds() / 1e9


def job_state(job, rank: int = 0) -> JobState:
    """One Beaker job (beaker_pb2.Job, or None when none was created yet) -> JobState."""
    from beaker import beaker_pb2 as pb2

    if job is None:
        return JobState(None, RunStatus.QUEUED, rank)
    st = job.status
    started = _seconds(st.started) if st.HasField("started") else None
    ended = _seconds(st.finalized) if st.HasField("finalized") else None
    exit_code = st.exit_code if st.HasField("exit_code") else None
    state = JobState(job.id, RunStatus.QUEUED, rank, exit_code, st.message, started, ended)
    if ended is not None:
        code_name = pb2.CancelationCode.Name(st.canceled_code) if st.canceled_code else ""
        if code_name in PREEMPTION_CODES:
            state.status = RunStatus.PREEMPTED
        elif code_name == SIBLING_FAILED:
            state.status = RunStatus.FAILED
        elif code_name in CANCEL_CODES or (st.HasField("canceled") and not code_name):
            state.status = RunStatus.CANCELLED
        elif code_name:  # timeout, impossible to schedule, failed health check
            state.status = RunStatus.FAILED
            reason = code_name.replace("CANCELATION_CODE_", "").replace("_", " ").lower()
            state.message = f"stopped by Beaker: {reason}" + (f" ({st.message})" if st.message else "")
        elif exit_code == 0 and pb2.WorkloadStatus.Name(st.status) == "STATUS_SUCCEEDED":
            state.status = RunStatus.SUCCEEDED
        else:
            state.status = RunStatus.FAILED
    elif started is not None:
        state.status = RunStatus.RUNNING
    elif st.HasField("scheduled"):
        state.status = RunStatus.STARTING
    return state


def run_state(workload, task_jobs: Sequence[Sequence]) -> RunState:
    """The run's state from the workload and each task's jobs, newest first."""
    from beaker import beaker_pb2 as pb2

    latest_jobs = [jobs[0] if jobs else None for jobs in task_jobs]
    replicas = [job_state(job, rank) for rank, job in enumerate(latest_jobs)]
    for job, replica in zip(latest_jobs, replicas):
        if job is not None and job.system_details.HasField("replica_group_details"):
            replica.rank = job.system_details.replica_group_details.rank
    replicas.sort(key=lambda r: r.rank)
    leader = replicas[0] if replicas else JobState(None, RunStatus.QUEUED)
    statuses = [r.status for r in replicas] or [RunStatus.QUEUED]
    workload_final = pb2.WorkloadStatus.Name(workload.status) in FINAL_WORKLOAD_STATES
    failed = [r for r in replicas if r.status == RunStatus.FAILED and r.exit_code not in (None, 0)]
    failed = failed or [r for r in replicas if r.status == RunStatus.FAILED]
    state = RunState(RunStatus.QUEUED, leader, replicas, started=leader.started)
    if failed:
        state.status, state.exit_code = RunStatus.FAILED, failed[0].exit_code
        what = f"exit code {failed[0].exit_code}" if failed[0].exit_code is not None else "no exit code"
        where = f" (replica {failed[0].rank})" if len(replicas) > 1 else ""
        state.message = f"job failed{where}: {failed[0].message or what}"
    elif RunStatus.PREEMPTED in statuses:
        if workload_final:  # Beaker queued no replacement: the run is over
            state.status, state.message = RunStatus.FAILED, "preempted, and Beaker queued no replacement"
        else:
            state.status, state.message = RunStatus.PREEMPTED, "preempted; waiting for Beaker's replacement job"
    elif all(s == RunStatus.SUCCEEDED for s in statuses):
        state.status, state.exit_code = RunStatus.SUCCEEDED, 0
    elif RunStatus.CANCELLED in statuses or workload.experiment.HasField("canceled"):
        state.status, state.message = RunStatus.CANCELLED, "cancelled on Beaker"
    elif all(s == RunStatus.RUNNING for s in statuses):
        state.status = RunStatus.RUNNING
    elif any(s in (RunStatus.RUNNING, RunStatus.STARTING) for s in statuses):
        state.status = RunStatus.STARTING  # some replicas are still waiting for the others
    history = [job_state(job) for job in task_jobs[leader_index(latest_jobs)]] if task_jobs else []
    state.preemptions = sum(1 for job in history if job.status == RunStatus.PREEMPTED)
    if state.status in (RunStatus.QUEUED, RunStatus.STARTING) and len(history) > 1 \
            and history[1].status == RunStatus.PREEMPTED:
        state.status = RunStatus.PREEMPTED
        state.message = f"preempted; Beaker's replacement job {history[0].job_id} is {history[0].status}"
    if state.status in RunStatus.TERMINAL:
        state.ended = max((r.ended for r in replicas if r.ended), default=None)
    return state


def leader_index(latest_jobs: Sequence) -> int:
    """Index of the task whose newest job is replica rank 0 (the leader), else 0."""
    for index, job in enumerate(latest_jobs):
        if job is not None and job.system_details.replica_group_details.rank == 0:
            return index
    return 0
