"""SLURM job states -> the registry's RunStatus, and the short labels of the runs table.

Queued: PENDING, CONFIGURING, REQUEUED (and its HOLD / FED forms), RESV_DEL_HOLD.
Running: RUNNING, COMPLETING, SIGNALING, STAGE_OUT, SUSPENDED, RESIZING.
Preempted: PREEMPTED while SLURM still lists the job (with requeue on, the next attempt follows).
Ended: COMPLETED -> succeeded (exit 0) | the exit code's meaning; CANCELLED -> cancelled;
TIMEOUT, NODE_FAIL, FAILED, OUT_OF_MEMORY, BOOT_FAIL, DEADLINE, PREEMPTED (not requeued)
-> failed with the reason in the message.

The engine's own exit codes (docs/CONTRACTS.md) decide between them when the job script ended
by itself: 138 (SIGUSR1) and 143 (SIGTERM) are graceful stops with a final checkpoint.
"""

from __future__ import annotations

from typing import Optional

from ..base import RunStatus

QUEUED_STATES = frozenset({"PENDING", "CONFIGURING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "RESV_DEL_HOLD"})
RUNNING_STATES = frozenset({"RUNNING", "COMPLETING", "SIGNALING", "STAGE_OUT", "SUSPENDED", "RESIZING"})
ENDED_MESSAGES = {
    "TIMEOUT": "the time limit was reached",
    "NODE_FAIL": "a node failed",
    "PREEMPTED": "preempted and not requeued",
    "OUT_OF_MEMORY": "out of memory (SLURM's limit)",
    "BOOT_FAIL": "a node failed to boot",
    "DEADLINE": "the deadline passed",
    "FAILED": "the job script failed",
}
GRACEFUL_EXIT_CODES = (138, 143)  # the engine stopped on SIGUSR1 / SIGTERM after a final checkpoint


def is_active(state: str) -> bool:
    return state in QUEUED_STATES or state in RUNNING_STATES or state == "PREEMPTED"


def active_status(state: str) -> str:
    if state in QUEUED_STATES:
        return RunStatus.QUEUED
    if state == "PREEMPTED":
        return RunStatus.PREEMPTED
    return RunStatus.RUNNING


def ended_status(state: Optional[str], exit_code: Optional[int], cancel_requested: bool,
                 time_limit_signal: bool) -> tuple:
    """(status, message) of a job that has ended. `state` may be None when SLURM has forgotten
    the job and only the script's exit.json is left."""
    if cancel_requested or state == "CANCELLED":
        return RunStatus.CANCELLED, "stopped on request" if cancel_requested else "cancelled in SLURM (scancel)"
    if exit_code == 0 and state in (None, "COMPLETED"):
        return RunStatus.SUCCEEDED, None
    if exit_code in GRACEFUL_EXIT_CODES and state in (None, "COMPLETED", "FAILED"):
        why = "before the time limit" if time_limit_signal else "on a signal"
        return RunStatus.CANCELLED, (f"stopped {why} with a final checkpoint (exit code {exit_code}); "
                                     "relaunch with --resume to continue")
    if state in ENDED_MESSAGES:
        return RunStatus.FAILED, ENDED_MESSAGES[state] + (f" (exit code {exit_code})" if exit_code else "")
    if state is None and exit_code is None:
        return RunStatus.LOST, "SLURM no longer knows the job and it left no exit record"
    return RunStatus.FAILED, f"exited with code {exit_code}"


def label(run) -> str:
    """The runs table's backend cell for a SLURM run: `slurm 42 debug n[1-2]`."""
    extra = run.extra or {}
    parts = ["slurm", run.workload_id or "-"]
    parts += [extra[k] for k in ("partition", "nodes") if extra.get(k)]
    return " ".join(parts)
