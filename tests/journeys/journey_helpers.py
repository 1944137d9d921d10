"""What the journeys share: a fast user preset (tiny-cpu, smaller steps, no eval), the registry
the app under test writes to, and the terminal sizes every journey is walked at."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Callable, List

from olmo_tui.core.runs.registry import Registry, RunRecord

SIZES = [(80, 24), (160, 48)]

# tiny-cpu with one-sequence micro-batches and metrics every step: a step takes tens of ms on
# CPU, so a run of a few steps ends within seconds of torchrun's start-up.
FAST_PRESET = """
extends = "tiny-cpu"
description = "tiny-cpu, shortened for the journeys"
[data_loader]
global_batch_size = 256
[train_module]
rank_microbatch_size = 256
[trainer]
metrics_collect_interval = 1
max_duration = {{ value = {steps}, unit = "steps" }}
[trainer.callbacks.checkpointer]
save_interval = 1000
ephemeral_save_interval = {save}
[trainer.callbacks.lm_evaluator]
enabled = false
"""


def write_user_preset(name: str, steps: int, save: int = 500) -> str:
    """A user preset of `steps` steps with an ephemeral checkpoint every `save` steps."""
    folder = Path(os.environ["XDG_CONFIG_HOME"]) / "olmo-tui" / "presets"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.toml").write_text(FAST_PRESET.format(steps=steps, save=save))
    return name


def wait_runs(predicate: Callable[[List[RunRecord]], bool], timeout: float = 120.0,
              what: str = "runs") -> List[RunRecord]:
    """Poll the registry (the same SQLite file the app writes) until predicate(runs) holds."""
    from olmo_tui.core.launch import run_manager

    registry = Registry()
    deadline = time.monotonic() + timeout
    while True:
        runs = run_manager.refresh_all(registry)
        if predicate(runs):
            return runs
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {timeout:g} s for {what}: " + ", ".join(f"{r.id} {r.status}" for r in runs))
        time.sleep(0.2)


def cancel_leftovers() -> None:
    """A failed journey must not leave torchrun running on the shared machine."""
    from olmo_tui.core.launch import run_manager

    registry = Registry()
    for run in run_manager.refresh_all(registry):
        if not run.terminal:
            try:
                run_manager.cancel_run(run, grace_s=5.0)
            except Exception:  # already gone
                pass
