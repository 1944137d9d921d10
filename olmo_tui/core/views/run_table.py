"""The runs table's cells, shared by `olmo-tui runs` and the app's Runs screen."""

from __future__ import annotations

from typing import List

from ..backends.base import BackendError, get_backend
from ..formatting import age, human_count
from ..runs.health import stall_info
from ..runs.registry import RunRecord


# Scheduler states the registry status already says (SLURM's FAILED after a graceful stop would mislead).
PLAIN_STATES = frozenset({"COMPLETED", "FAILED", "CANCELLED", "RUNNING"})


def backend_cell(run: RunRecord) -> str:
    """The backend's own cell (SLURM: `slurm 42 debug n[1-2]`, job id, partition, nodes); the
    stored name where the backend is not available here."""
    try:
        return get_backend(run.backend).table_cell(run)
    except BackendError:
        return run.backend


def status_cell(run: RunRecord) -> str:
    """The status, with the scheduler's own word (extra["state"], which only a backend with a
    scheduler keeps) when it says more (`queued REQUEUED`, `failed TIMEOUT`); `stalled` for a
    running run whose steps stopped (the engine's hang watch)."""
    if stall_info(run) is not None:
        return "stalled"
    state = (run.extra or {}).get("state")
    if not state or state in PLAIN_STATES or state.lower() == run.status:
        return run.status
    return f"{run.status} {state}"


def table_row(run: RunRecord, now: float) -> List[str]:
    """ID, PRESET, BACKEND, STATUS, STEP, LOSS, TOK/S, MFU, AGE as display strings."""
    s = run.summary
    step = "-" if run.latest_step is None else str(run.latest_step)
    if run.total_steps:
        step += f"/{run.total_steps}"
    tps = s.get("tps_total") or s.get("tps")
    return [run.id, run.preset or "-", backend_cell(run), status_cell(run), step,
            f"{s['loss']:.4g}" if s.get("loss") is not None else "-",
            human_count(round(tps)) if tps else "-",  # whole tokens: "931", "1.1K", never "930.748"
            f"{s['mfu']:.1f}%" if s.get("mfu") is not None else "-",
            age(now - run.created)]
