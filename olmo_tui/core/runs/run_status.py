"""Run status values, shared by the registry (the stored column) and the backends (who set it).

Its own module so the registry does not import the backends package (and the backends, who
take and return RunRecords, can import the registry without a cycle).
"""


class RunStatus:
    QUEUED = "queued"
    STARTING = "starting"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    PREEMPTED = "preempted"
    LOST = "lost"

    ALL = (QUEUED, STARTING, RUNNING, SUCCEEDED, FAILED, CANCELLED, PREEMPTED, LOST)
    # Finished for good: refresh() is not called again for these.
    TERMINAL = frozenset({SUCCEEDED, FAILED, CANCELLED, LOST})
    ACTIVE = frozenset(ALL) - TERMINAL


GRACEFUL_EXIT_CODES = (130, 143)  # the engine stopped on SIGINT / SIGTERM after a final checkpoint


def status_for_exit(exit_code: int, cancel_requested: bool) -> str:
    """The state an exit code in a run dir's exit record means (local runs, rebuilt records)."""
    if exit_code == 0:
        return RunStatus.SUCCEEDED
    if exit_code in GRACEFUL_EXIT_CODES or cancel_requested:
        return RunStatus.CANCELLED
    return RunStatus.FAILED
