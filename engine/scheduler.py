"""Learning-rate schedules as a factor of the peak LR, a pure function of the step.

`step` counts optimizer steps already taken (0 for the first step); `max_steps` comes from
trainer.max_duration (hard_stop never changes it). Warm-up is linear from lr/warmup to lr over
`warmup_steps`; after it:
  constant  1
  linear    1 -> final_lr_ratio at max_steps
  cosine    final + (1 - final) * (1 + cos(pi * progress)) / 2
  wsd       1 until the last decay_fraction of the run, then linear to final_lr_ratio
"""

from __future__ import annotations

import math
from functools import partial
from typing import Callable, Optional

from engine.config import SchedulerConfig


def lr_factor(cfg: SchedulerConfig, step: int, max_steps: Optional[int]) -> float:
    current = step + 1  # 1-based: the step about to be taken
    if cfg.warmup_steps and current <= cfg.warmup_steps:
        return current / cfg.warmup_steps
    if cfg.name == "constant":
        return 1.0
    if max_steps is None:
        raise ValueError(f"scheduler '{cfg.name}' needs max_steps (TrainModule.set_max_steps)")
    final = cfg.final_lr_ratio
    if cfg.name == "wsd":
        decay_steps = max(1, round(cfg.decay_fraction * max_steps))
        decay_start = max(cfg.warmup_steps, max_steps - decay_steps)
        if current <= decay_start:
            return 1.0
        progress = min(1.0, (current - decay_start) / max(1, max_steps - decay_start))
        return 1.0 - (1.0 - final) * progress
    span = max(1, max_steps - cfg.warmup_steps)
    progress = min(1.0, max(0.0, (current - cfg.warmup_steps) / span))
    if cfg.name == "linear":
        return 1.0 - (1.0 - final) * progress
    return final + (1.0 - final) * 0.5 * (1.0 + math.cos(math.pi * progress))


def build_schedule(_own, cfg: SchedulerConfig) -> Callable[[int, Optional[int]], float]:
    """The built-in schedules (registered in engine/config/train_module.py): step, max_steps -> factor."""
    return partial(lr_factor, cfg)
