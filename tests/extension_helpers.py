"""A researcher's extension written to a folder outside the repo: a callback that records a
metric, a ReLU^2 MLP and a data source made of a Python generator (engine/extend.py).

`version` is what its callback records as `ext_version`, so a test can tell which copy of the
code ran (the run dir's snapshot or the edited source)."""

from __future__ import annotations

import textwrap
from pathlib import Path

INIT = '''
"""Test extension {name}: registers a callback, an MLP and a data source (no torch here)."""
from engine.extend import (CallbackConfig, Config, Field, register_callback, register_data_source,
                           register_mlp)

VERSION = {version}


class ReLU2Config(Config):
    """Squared-ReLU feed-forward (Primer): w2(relu(w1 x)^2)."""

    hidden_multiplier: float = Field(4.0, gt=0, description="Hidden size as a multiple of d_model.")

    def hidden(self, model) -> int:
        return int(self.hidden_multiplier * model.d_model)

    def matmul_params(self, model) -> int:
        return 2 * model.d_model * self.hidden(model)


class ParamStatsConfig(CallbackConfig):
    """Records the RMS of the weights and the extension's version."""

    every: int = Field(1, gt=0, description="Steps between recordings.")


class CountingConfig(Config):
    """Ids 0, 1, 2, ... modulo `modulus` from a Python generator."""

    num_tokens: int = Field(65536, gt=0, description="Tokens to draw from the generator.")
    modulus: int = Field(200, gt=1, description="Ids cycle through 0 .. modulus - 1.")


register_mlp("relu2{suffix}", ReLU2Config, build="{name}.modules:ReLU2MLP")
register_callback("param_stats{suffix}", ParamStatsConfig, build="{name}.modules:ParamStats")
register_data_source("counting{suffix}", CountingConfig, build="{name}.data:counting_source")
'''

MODULES = '''
import torch
from torch import nn

from engine.train.callback import Callback

from . import VERSION


class ReLU2MLP(nn.Module):
    def __init__(self, cfg, model, index):
        super().__init__()
        self.w1 = nn.Linear(model.d_model, cfg.hidden(model), bias=False)
        self.w2 = nn.Linear(cfg.hidden(model), model.d_model, bias=False)

    def forward(self, x):
        return self.w2(torch.relu(self.w1(x)).square())


class ParamStats(Callback):
    priority = 20  # a producer: before the metrics writer

    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg

    def post_step(self):
        if self.trainer.global_step % self.cfg.every == 0:
            params = [p.detach().float() for p in self.trainer.train_module.model.parameters()]
            squares = sum(p.to_local().square().sum() if hasattr(p, "to_local") else p.square().sum()
                          for p in params)
            count = sum(p.numel() for p in params)
            self.trainer.record_metric("param_rms", (squares / count).sqrt())
            self.trainer.record_metric("ext_version", torch.tensor(float(VERSION)))
'''

DATA = '''
def counting_source(cfg, experiment):
    from engine.data.token_source import ArrayTokens

    def ids():
        i = 0
        while True:
            yield i % cfg.modulus
            i += 1

    return ArrayTokens.from_iterable(ids(), cfg.num_tokens, experiment.dataset.tokenizer.vocab_size)
'''


def write_extension(folder: Path, name: str = "my_ext", version: int = 1, suffix: str = "") -> Path:
    """The package folder `folder/name` (give its path to `extensions`). Its components are named
    relu2, param_stats and counting, plus `suffix`: registries are per process, so two extensions
    loaded by tests of one process need names of their own."""
    package = folder / name
    package.mkdir(parents=True, exist_ok=True)
    (package / "__init__.py").write_text(textwrap.dedent(INIT).format(name=name, version=version, suffix=suffix).lstrip())
    (package / "modules.py").write_text(textwrap.dedent(MODULES).lstrip())
    (package / "data.py").write_text(textwrap.dedent(DATA).lstrip())
    return package


# The overrides that choose all three components (tiny-cpu sizes).
def choose_all(package: Path) -> list:
    return [f"--extensions=[{package}]", "--model.mlp.kind=relu2", "--dataset.kind=counting",
            "--trainer.callbacks.param_stats.every=1"]
