"""Router health of an MoE model over one training step, as metrics (docs/CONTRACTS.md):

    moe/lb_loss        load-balancing loss, mean over MoE blocks (1.0 = perfectly balanced)
    moe/z_loss         router z-loss, mean over MoE blocks
    moe/load/<i>       block i's tokens per expert over the step, all data-parallel ranks summed
                       (a list of num_experts numbers; each token counts top_k times)
    moe/imbalance/<i>  block i's busiest expert's load / the mean load (1.0 = balanced)

The losses are weighted like the CE: each micro-batch's per-token mean by its label count,
divided by the global label count. Everything stays on the device (no host sync per step).
"""

from __future__ import annotations

from typing import Callable, Dict

import torch

from engine.nn.moe import MoE


class RouterStats:
    def __init__(self, layers: Dict[int, MoE], device: torch.device):
        self.layers = layers
        self.device = device
        self._reset()

    def _reset(self) -> None:
        self.lb = torch.zeros((), device=self.device)
        self.z = torch.zeros((), device=self.device)
        self.load = {i: torch.zeros(m.cfg.num_experts, device=self.device) for i, m in self.layers.items()}

    def add(self, label_mask: torch.Tensor) -> None:
        """After a micro-batch's forward: fold in its router statistics (label_mask: its non-ignored labels)."""
        if not self.layers:
            return
        n = label_mask.sum().float()
        for i, moe in self.layers.items():
            self.lb += moe.lb_loss.detach() * n / len(self.layers)
            self.z += moe.z_loss.detach() * n / len(self.layers)
            self.load[i] += moe.tokens_per_expert.float()

    def collect(self, all_reduce: Callable[[torch.Tensor], torch.Tensor],
                global_tokens: torch.Tensor) -> Dict[str, torch.Tensor]:
        """The step's moe/* metrics (summed over data-parallel ranks by `all_reduce`); resets."""
        if not self.layers:
            return {}
        order = sorted(self.load)
        # one all-reduce: both losses and every block's load
        packed = all_reduce(torch.cat([self.lb.reshape(1), self.z.reshape(1)] + [self.load[i] for i in order]))
        metrics = {"moe/lb_loss": packed[0] / global_tokens, "moe/z_loss": packed[1] / global_tokens}
        at = 2
        for i in order:
            load = packed[at:at + self.load[i].numel()]
            at += load.numel()
            metrics[f"moe/load/{i}"] = load
            metrics[f"moe/imbalance/{i}"] = load.max() / load.mean().clamp_min(1e-9)
        self._reset()
        return metrics
