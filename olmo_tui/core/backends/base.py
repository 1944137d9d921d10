"""The Backend protocol: what the run manager, the screens and the headless CLI need from a
place that runs jobs (this machine through torchrun, a Beaker cluster, a SLURM cluster).

A backend never writes the registry itself: every method takes a RunRecord and returns an
updated copy (dataclasses.replace), and the caller saves the fields that changed. That keeps
all SQLite writes in one place (registry.py) and lets a backend be tested without one.

Status values (RunStatus): queued -> starting -> running -> succeeded | failed | cancelled,
plus preempted (Beaker: the job was taken back; its replacement is followed) and lost (the
process vanished without recording how it ended, or the backend no longer knows the job).
"""

from __future__ import annotations

import importlib
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Dict, Iterator, List, Mapping, Optional, Protocol, Tuple, runtime_checkable

from ..runs.run_status import RunStatus  # noqa: F401  (re-exported: backends and screens import it from here)

if TYPE_CHECKING:  # engine.config is torch-free, but keep import time small for `olmo-tui runs`
    from engine.config import ExperimentConfig

    from ..runs.registry import RunRecord


class BackendError(Exception):
    """The backend could not do what was asked (torchrun missing, Beaker unreachable, ...).
    The message is one line for the user; the headless CLI exits with code 3 (LAUNCH)."""


@runtime_checkable
class Backend(Protocol):
    """What a backend does, and what it can do: callers ask these, never the backend's name."""

    name: str  # "local", "beaker" or "slurm": the value stored in RunRecord.backend
    description: str  # one line for help and the docs
    # The job reads and writes this machine's files (local; SLURM: a shared filesystem): relative
    # paths mean this directory, and the run dir (log, metrics, checkpoints) is readable here.
    sees_local_files: bool
    # The run-dir file holding what was submitted as JSON (Beaker's experiment spec), which
    # `--save-spec` copies; None where the backend submits nothing of the kind.
    spec_file: Optional[str]
    # A run recorded as lost is looked at again on refresh (the local backend judges life by the
    # run-dir lock, so a run it lost track of may be alive after all).
    rechecks_lost: bool

    def preflight(self, cfg: "ExperimentConfig", run_dir: Path) -> List[str]:
        """The backend's own checks before anything exists (the engine's data and path checks
        where this machine sees the job's files; Beaker: the git tree; SLURM: the shared
        filesystem rule). Raises engine.errors.UserError or ConfigError (exit 2) for a user
        mistake, BackendError (exit 3) when the backend cannot tell; returns warnings."""

    def dry_run(self, cfg: "ExperimentConfig", run_id: str, run_dir: Path,
                as_json: bool) -> Optional[Tuple[str, str]]:
        """What `--dry-run` prints for this backend: (stdout, a note for stderr), e.g. the exact
        Beaker spec or SLURM job script; None prints the resolved config. Nothing is contacted."""

    def table_cell(self, run: "RunRecord") -> str:
        """The runs table's Backend cell: the name, plus where the job runs when that helps."""

    def follow_log_batches(self, run: "RunRecord", stop: threading.Event,
                           follow: bool = True) -> Iterator[List[str]]:
        """follow_logs in batches (whatever arrived together), for a view that redraws per batch."""

    def command(self, run: "RunRecord", cfg: "ExperimentConfig") -> List[str]:
        """The exact command the job will run (shown in the monitor header and --dry-run)."""

    def launch(self, run: "RunRecord", cfg: "ExperimentConfig", secrets: Mapping[str, str]) -> "RunRecord":
        """Start the job for `run` (its run_dir exists and holds config.toml). Secrets reach the
        job by environment (local) or by secret name (Beaker) only, never a file. Returns the
        record with status, pid/pgid or workload_id, argv and started filled in. Raises
        BackendError when nothing was started."""

    def refresh(self, run: "RunRecord") -> "RunRecord":
        """Look at the job now: status, exit_code, ended, latest_step and summary. Must return
        within a few seconds (bounded network calls) and never raise for a vanished job: that
        is status lost."""

    def cancel(self, run: "RunRecord", grace_s: float) -> "RunRecord":
        """Ask the job to stop: a graceful signal (the engine writes a final checkpoint and
        exits 143), then a hard kill after grace_s seconds. May return before the job has
        ended (status stays running with cancel_requested set); refresh() records the end."""

    def follow_logs(self, run: "RunRecord", stop: threading.Event, follow: bool = True) -> Iterator[str]:
        """Yield the job's log lines (without newlines) from the beginning, then (follow=True)
        new ones as they come, until the job has ended and everything was yielded, or `stop`
        is set. follow=False yields what exists now and returns. Lines holding
        `[metrics] {json}` are yielded too: the caller parses them (engine.run_dir.parse_metrics_line)."""


# name -> "module:attribute" of a zero-argument factory; imported on first use so the Beaker
# client (grpc) is only loaded when a Beaker run is touched.
BACKENDS: Dict[str, str] = {
    "local": "olmo_tui.core.backends.local:LocalBackend",
    "beaker": "olmo_tui.core.backends.beaker:BeakerBackend",
    "slurm": "olmo_tui.core.backends.slurm:SlurmBackend",
}
_instances: Dict[str, Backend] = {}
_lock = threading.Lock()


def get_backend(name: str) -> Backend:
    """The shared backend instance for `name`; BackendError if unknown or not installed."""
    with _lock:
        if name in _instances:
            return _instances[name]
        target = BACKENDS.get(name)
        if target is None:
            raise BackendError(f"unknown backend {name!r}; known: {', '.join(BACKENDS)}")
        module_name, attr = target.split(":")
        try:
            factory = getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError) as exc:
            raise BackendError(f"the {name} backend is not available: {exc}") from exc
        _instances[name] = factory()
        return _instances[name]


def set_backend(name: str, backend: Optional[Backend]) -> None:
    """Install (or with None, drop) the instance used for `name`: tests point the Beaker
    backend at a fake server this way."""
    with _lock:
        if backend is None:
            _instances.pop(name, None)
        else:
            _instances[name] = backend


def sees_local_files(name: str) -> bool:
    """Whether runs of backend `name` have their run dir on a filesystem this machine reads
    (False for an unknown or unavailable backend)."""
    try:
        return bool(get_backend(name).sees_local_files)
    except BackendError:
        return False
