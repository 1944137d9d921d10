"""The launcher's pre-flight: the engine's torch-free checks (engine/preflight.py), run before
a run record or run directory exists, so a user mistake (a data path, an unset ${VAR}, an
unwritable folder, a missing load_path, W&B without its key) is one line and exit 2 from
`olmo-tui --preset ...` or `relaunch`, and a notification in the app, with nothing left behind.

Only for the local backend: a Beaker job's paths and environment are the cluster's, not this
machine's; the engine checks them there (its own pre-flight, before its run dir exists).
"""

from __future__ import annotations

from pathlib import Path

from engine.config import ExperimentConfig
from engine.errors import UserError

__all__ = ["UserError", "check_before_launch"]


def check_before_launch(cfg: ExperimentConfig, run_dir: Path) -> None:
    """Raise engine.errors.UserError for the first mistake found; creates nothing."""
    if cfg.launch.backend != "local":
        return
    from engine.preflight import preflight_checks

    preflight_checks(cfg, run_dir, check_run_dir=False)  # creating the run dir is the launcher's job
