"""What a launch would run, as argument lists: the headless command that reproduces the edited
config (`olmo-tui --preset NAME --a.b=v ...`) and the torchrun argv of the engine (CONTRACTS.md).

`LaunchRequest` is what the app's Launch action hands to the launch flow (the run manager).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, List, Optional

if TYPE_CHECKING:  # annotations only: the app's first screen imports this without the schema
    from engine.config import ExperimentConfig


@dataclass
class LaunchRequest:
    cfg: ExperimentConfig  # validated
    preset_name: Optional[str]  # the preset the editor started from (None: a run's config)
    overrides: List[str] = field(default_factory=list)  # --a.b=v, relative to that preset
    parent_run_id: Optional[str] = None  # set when relaunching a run


def run_dir_for(run_name: str) -> Path:
    """CONTRACTS.md: $OLMO_TUI_RUNS_DIR/RUN_NAME, else ./runs/RUN_NAME."""
    return Path(os.environ.get("OLMO_TUI_RUNS_DIR") or "runs") / run_name


def headless_command(request: LaunchRequest) -> List[str]:
    argv = ["olmo-tui"]
    if request.preset_name:
        argv += ["--preset", request.preset_name]
    return argv + list(request.overrides)


def torchrun_argv(cfg: ExperimentConfig, run_dir: Path, python: str = "python") -> List[str]:
    return [
        python, "-m", "torch.distributed.run", "--standalone",
        "--nproc-per-node", str(cfg.launch.nproc_per_node),
        "-m", "engine", cfg.run_name, "--config", str(run_dir / "config.toml"), "--run-dir", str(run_dir),
    ]
