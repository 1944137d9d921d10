"""The public API of extensions: register your own components by name.

    # my_components/__init__.py  (imported by the app too: no torch here)
    from engine.extend import Config, Field, register_mlp

    class ReLU2Config(Config):
        '''Squared-ReLU feed-forward (Primer).'''
        hidden_multiplier: float = Field(4.0, gt=0, description="Hidden size / d_model.")

    register_mlp("relu2", ReLU2Config, build="my_components.modules:ReLU2MLP")

Name the module in a config's `extensions` list and choose it: `model.mlp.kind = "relu2"`,
with its fields under `model.mlp.relu2`. Each kind's builder is called by the engine with the
component's own config first (an empty Config for one without fields), then:

    kind          config section (selector)        builder(cfg, ...) -> what
    callback      trainer.callbacks.<name>         (cfg) -> engine.train.callback.Callback
    mlp           model.mlp (kind)                 (cfg, model: ModelConfig, index) -> nn.Module (B,T,d)->(B,T,d)
    attention     model.attention (kind)           (cfg, model, index) -> nn.Module (x, cos, sin, mask) -> x
    norm          model.norm (kind)                (cfg, model, dim) -> nn.Module
    block         model.block (kind)               (cfg, model, index) -> nn.Module (x, cos, sin, mask) -> x
    loss          train_module.loss (kind)         (cfg) -> fn(logits (N,V), labels (N,), ignore_index, z) -> (ce_sum, z_sum|None)
    optimizer     train_module.optim (name)        (cfg, optim: OptimConfig, param_groups, device) -> torch.optim.Optimizer
    scheduler     train_module.scheduler (name)    (cfg, scheduler: SchedulerConfig) -> fn(step, max_steps) -> LR factor
    data_source   dataset (kind)                   (cfg, experiment: ExperimentConfig) -> a token source
    train_module  train_module (kind)              (cfg, experiment) -> a TrainModule subclass (the class)

A config model may add `matmul_params(self, model) -> int` (mlp) so the estimates and MFU
count its weights. engine/data/token_source.py's `ArrayTokens.from_iterable` turns a Python
generator of token ids into a token source. Metrics: `self.trainer.record_metric(name, value)`
in a callback's post_step reaches metrics.jsonl, the log's [metrics] lines, the monitor and
`olmo-tui compare`. Torch-free.
"""

from __future__ import annotations

from typing import Optional, Type

from pydantic import BaseModel, Field  # noqa: F401  (re-exported for extensions)

from engine.config.base import Config  # noqa: F401
from engine.config.trainer import CallbackConfig  # noqa: F401
from engine.config.extensions.registry import KINDS, Builder, Component, components, register  # noqa: F401


def _registrar(kind: str):
    def register_kind(name: str, config: Optional[Type[BaseModel]] = None, *, build: Builder,
                      description: str = "") -> Component:
        return register(kind, name, build, config, description)

    register_kind.__name__ = register_kind.__qualname__ = f"register_{kind}"
    register_kind.__doc__ = f"Register a {kind} named `name` (see this module's table for its builder)."
    return register_kind


def register_callback(name: str, config: Optional[Type[BaseModel]] = None, *, build: Builder,
                      description: str = "") -> Component:
    """A callback's config should derive from CallbackConfig (its `enabled` switch)."""
    return register("callback", name, build, config or CallbackConfig, description)


register_mlp = _registrar("mlp")
register_attention = _registrar("attention")
register_norm = _registrar("norm")
register_block = _registrar("block")
register_loss = _registrar("loss")
register_optimizer = _registrar("optimizer")
register_scheduler = _registrar("scheduler")
register_data_source = _registrar("data_source")
register_train_module = _registrar("train_module")
