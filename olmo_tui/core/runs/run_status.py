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
