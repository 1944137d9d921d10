"""Gated feed-forward (Shazeer 2020): w2(act(w1 x) * w3 x), with SiLU (SwiGLU: Llama, OLMo,
Qwen) or the tanh approximation of GELU (GeGLU: Gemma, HF's gelu_pytorch_tanh)."""

from __future__ import annotations

from functools import partial

import torch
import torch.nn.functional as F
from torch import nn

ACTIVATIONS = {"silu": F.silu, "gelu_tanh": partial(F.gelu, approximate="tanh")}


class SwiGLU(nn.Module):
    def __init__(self, d_model: int, hidden: int, activation: str = "silu"):
        super().__init__()
        self.w1 = nn.Linear(d_model, hidden, bias=False)  # gate
        self.w3 = nn.Linear(d_model, hidden, bias=False)  # up
        self.w2 = nn.Linear(hidden, d_model, bias=False)  # down
        self.act = ACTIVATIONS[activation]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (B, T, d) -> (B, T, hidden) -> (B, T, d)
        return self.w2(self.act(self.w1(x)) * self.w3(x))


def build_gated(cfg, model, index: int) -> SwiGLU:
    """The built-in MLP (registered as "gated" in engine/config/model.py)."""
    return SwiGLU(model.d_model, model.mlp_hidden, "gelu_tanh" if model.gemma_blocks else "silu")
