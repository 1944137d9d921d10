"""Callback names (the keys of trainer.callbacks in the config) -> classes.

A callback is built when its config section is enabled. A new callback adds its class here and
its config section to engine.config.trainer.CallbacksConfig under the same name.
"""

from __future__ import annotations

from typing import Callable, Dict, List

from engine.config import ExperimentConfig

from ..callback import Callback
from .checkpointer import CheckpointerCallback
from .config_saver import ConfigSaverCallback
from .console_logger import ConsoleLoggerCallback
from .downstream_evaluator import DownstreamEvaluatorCallback
from .garbage_collector import GarbageCollectorCallback
from .gpu_monitor import GPUMonitorCallback
from .lm_evaluator import LMEvaluatorCallback
from .metrics_writer import MetricsWriterCallback
from .profiler import ProfilerCallback
from .speed_monitor import SpeedMonitorCallback
from .wandb_logger import WandBCallback

CALLBACKS: Dict[str, Callable[..., Callback]] = {
    "console_logger": ConsoleLoggerCallback,
    "speed_monitor": SpeedMonitorCallback,
    "metrics_writer": MetricsWriterCallback,
    "checkpointer": CheckpointerCallback,
    "garbage_collector": GarbageCollectorCallback,
    "config_saver": ConfigSaverCallback,
    "lm_evaluator": LMEvaluatorCallback,
    "downstream_evaluator": DownstreamEvaluatorCallback,
    "profiler": ProfilerCallback,
    "gpu_monitor": GPUMonitorCallback,
    "wandb": WandBCallback,
}

# Switched off as a group by trainer.no_checkpoints / trainer.no_evals.
_CHECKPOINT_CALLBACKS = {"checkpointer", "config_saver"}
_EVAL_CALLBACKS = {"lm_evaluator", "downstream_evaluator"}


def build_callbacks(cfg: ExperimentConfig) -> List[Callback]:
    callbacks = []
    for name, section in cfg.trainer.callbacks:
        if not section.enabled or name not in CALLBACKS:
            continue
        if cfg.trainer.no_checkpoints and name in _CHECKPOINT_CALLBACKS:
            continue
        if cfg.trainer.no_evals and name in _EVAL_CALLBACKS:
            continue
        callbacks.append(CALLBACKS[name](section))
    return callbacks
