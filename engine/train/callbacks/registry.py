"""Build the callbacks a config switches on, from the callback registry.

Every callback, built-in or an extension's, is a registered component (engine/config/trainer.py
registers the built-ins; engine/extend.py is the API): its config section is
`trainer.callbacks.<name>` and its builder gets that section. A section that is unset (an
extension's callback the config does not use) or `enabled = false` builds nothing.
"""

from __future__ import annotations

from typing import List

from engine.config import ExperimentConfig
from engine.config.extensions.registry import components

from ..callback import Callback

# Switched off as a group by trainer.no_checkpoints / trainer.no_evals.
_CHECKPOINT_CALLBACKS = {"checkpointer", "config_saver"}
_EVAL_CALLBACKS = {"lm_evaluator", "downstream_evaluator"}


def build_callbacks(cfg: ExperimentConfig) -> List[Callback]:
    callbacks = []
    for component in components("callback"):
        section = getattr(cfg.trainer.callbacks, component.name)
        if section is None or not getattr(section, "enabled", True):
            continue
        if cfg.trainer.no_checkpoints and component.name in _CHECKPOINT_CALLBACKS:
            continue
        if cfg.trainer.no_evals and component.name in _EVAL_CALLBACKS:
            continue
        callback = component.builder()(section)
        if type(callback).name == Callback.name:  # its state in checkpoints is kept under its config name
            callback.name = component.name
        callbacks.append(callback)
    return callbacks
