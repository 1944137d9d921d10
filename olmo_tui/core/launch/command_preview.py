"""What a launch would run, as argument lists: the headless command that reproduces the edited
config (`olmo-tui --preset NAME --a.b=v ...`).

`LaunchRequest` is what the app's Launch action hands to the launch flow (the run manager).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, List, Optional, Sequence

if TYPE_CHECKING:  # annotations only: the app's first screen imports this without the schema
    from engine.config import ExperimentConfig


@dataclass
class LaunchRequest:
    cfg: ExperimentConfig  # validated
    preset_name: Optional[str]  # the preset the editor started from (None: a run's config)
    overrides: List[str] = field(default_factory=list)  # --a.b=v, relative to that preset
    parent_run_id: Optional[str] = None  # set when relaunching a run



def headless_command(request: LaunchRequest) -> List[str]:
    """The command line that launches the same config: a relaunch's overrides are relative to
    its parent's resolved config, so it is `olmo-tui relaunch PARENT`, never the overrides
    alone (which would start from the defaults)."""
    if request.parent_run_id:
        return ["olmo-tui", "relaunch", request.parent_run_id, *request.overrides]
    return launch_command(request.preset_name, None, request.overrides)


def launch_command(preset: Optional[str], config: Optional[str], overrides: Sequence[str]) -> List[str]:
    """`olmo-tui --preset P | --config FILE` and the overrides: the one spelling of a launch
    command (the editor's preview, a sweep variant's line in `sweep --dry-run`)."""
    argv = ["olmo-tui"]
    if preset:
        argv += ["--preset", preset]
    elif config:
        argv += ["--config", config]
    return argv + list(overrides)
