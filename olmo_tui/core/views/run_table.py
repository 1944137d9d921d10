"""The runs table's cells, shared by `olmo-tui runs` and the app's Runs screen."""

from __future__ import annotations

from typing import List

from ..formatting import age, human_count
from ..runs.registry import RunRecord


# SLURM states the registry status already says (FAILED after a graceful stop would mislead).
PLAIN_SLURM_STATES = frozenset({"COMPLETED", "FAILED", "CANCELLED", "RUNNING"})


def backend_cell(run: RunRecord) -> str:
    """The backend, and for SLURM runs where: `slurm 42 debug n[1-2]` (job id, partition, nodes)."""
    if run.backend == "slurm":
        from ..backends.slurm.status import label

        return label(run)
    return run.backend


def status_cell(run: RunRecord) -> str:
    """The status, with SLURM's own word when it says more (`queued REQUEUED`, `failed TIMEOUT`)."""
    state = (run.extra or {}).get("state") if run.backend == "slurm" else None
    if not state or state in PLAIN_SLURM_STATES or state.lower() == run.status:
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
