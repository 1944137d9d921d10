"""Mixture-of-experts feed-forward: a top-k router over gated-MLP experts, dropless (every token
reaches all k of its experts; no capacity factor), optional shared experts, and the router's
auxiliary losses. Expert parallelism (engine/distributed/expert_parallel.py) shards the experts
over ranks and moves tokens with all-to-all; this module's dispatch is written so that path only
adds the exchange between "sorted by expert" and "grouped matmul".

    x (N, d) -> router logits (N, E) -> scores (softmax | sigmoid) -> top-k (N, k) ids + weights
             -> the N*k (token, expert) pairs sorted by expert -> experts -> weighted sum over k

Parameters (names are a contract, as in transformer.py):
    mlp.router.weight        (E, d)
    mlp.experts.w1 / w3      (E, h, d)   gate / up, each expert's nn.Linear layout
    mlp.experts.w2           (E, d, h)   down
    mlp.shared.{w1,w3,w2}.weight          the shared experts as one gated MLP of hidden S*h
                                          (S experts of hidden h summed = one of hidden S*h)

Auxiliary losses (the last forward's, on the module; Transformer.forward adds them to the
objective, the TrainModule reports them):
    load balancing  E * sum_i f_i * P_i   f_i = share of the N*k assignments on expert i (no grad),
                                          P_i = mean router probability of expert i (Switch
                                          Transformer eq. 4, over top-k); 1 when balanced
    router z-loss   mean_t logsumexp(logits_t)^2  (ST-MoE)
"""

from __future__ import annotations

from typing import Callable, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from engine.config.moe import MoEConfig

from .mlp import SwiGLU


def _local(t: torch.Tensor) -> torch.Tensor:
    """A DTensor's local shard (the experts this rank holds under expert parallelism)."""
    return t.to_local() if hasattr(t, "to_local") else t


class Router(nn.Module):
    def __init__(self, d_model: int, cfg: MoEConfig):
        super().__init__()
        self.cfg = cfg
        self.weight = nn.Parameter(torch.empty(cfg.num_experts, d_model))

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """x (N, d) -> (logits (N, E) fp32, probs (N, E) fp32, top-k weights (N, k) in x's dtype,
        top-k expert ids (N, k) long)."""
        logits = F.linear(x, _local(self.weight)).float()
        probs = torch.softmax(logits, dim=-1) if self.cfg.gating == "softmax" else torch.sigmoid(logits)
        weights, ids = torch.topk(probs, self.cfg.top_k, dim=-1)
        if self.cfg.normalize_top_k:
            weights = weights / weights.sum(dim=-1, keepdim=True)
        return logits, probs, weights.to(x.dtype), ids


class _ScaleGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, scale: float) -> torch.Tensor:
        ctx.scale = scale
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return grad * ctx.scale, None


class Experts(nn.Module):
    """E gated-MLP experts as stacked weights; under expert parallelism each rank holds E / ep."""

    def __init__(self, d_model: int, cfg: MoEConfig):
        super().__init__()
        E, h = cfg.num_experts, cfg.hidden_size
        self.w1 = nn.Parameter(torch.empty(E, h, d_model))
        self.w3 = nn.Parameter(torch.empty(E, h, d_model))
        self.w2 = nn.Parameter(torch.empty(E, d_model, h))
        self.grouped = cfg.implementation == "grouped"
        # Expert parallelism sets 1 / ep: the weights' gradients already sum the ep group's tokens
        # (all-to-all backward), and FSDP then averages over dp_mod_ep only (expert_parallel.py).
        self.grad_scale = 1.0

    def forward(self, x: torch.Tensor, counts: torch.Tensor, count_list: list) -> torch.Tensor:
        """x (M, d): rows sorted by local expert, counts[i] rows for expert i -> (M, d)."""
        w1, w3, w2 = _local(self.w1), _local(self.w3), _local(self.w2)
        if self.grad_scale != 1.0:
            w1, w3, w2 = (_ScaleGrad.apply(w, self.grad_scale) for w in (w1, w3, w2))
        if self.grouped:
            offs = torch.cumsum(counts, 0).to(torch.int32)  # end row of each expert's group
            # _grouped_mm takes (M, d) x (E, d, h): the transposed views of the nn.Linear layout
            gate = torch._grouped_mm(x, w1.transpose(-2, -1), offs=offs)
            up = torch._grouped_mm(x, w3.transpose(-2, -1), offs=offs)
            return torch._grouped_mm(F.silu(gate) * up, w2.transpose(-2, -1), offs=offs)
        outs, start = [], 0
        for e, n in enumerate(count_list):  # the reference path: one expert at a time
            rows = x[start:start + n]
            outs.append(F.linear(F.silu(F.linear(rows, w1[e])) * F.linear(rows, w3[e]), w2[e]))
            start += n
        return torch.cat(outs) if outs else x.new_zeros(0, x.shape[-1])


# (sorted tokens, counts per local expert (tensor, list)) -> expert outputs, same order; expert
# parallelism replaces it with dispatch -> experts -> combine (expert_parallel.py).
ExpertsCall = Callable[[torch.Tensor, torch.Tensor, list], torch.Tensor]


class MoE(nn.Module):
    def __init__(self, d_model: int, cfg: MoEConfig):
        super().__init__()
        self.cfg = cfg
        self.router = Router(d_model, cfg)
        self.experts = Experts(d_model, cfg)
        self.shared = (SwiGLU(d_model, cfg.num_shared_experts * cfg.hidden_size)
                       if cfg.num_shared_experts else None)
        # Expert parallelism sets this to its all-to-all exchange around self.experts.
        self.run_experts: Optional[ExpertsCall] = None
        # The last forward's router statistics (see module docstring); read by the Transformer
        # and the TrainModule after each forward.
        self.lb_loss: Optional[torch.Tensor] = None
        self.z_loss: Optional[torch.Tensor] = None
        self.tokens_per_expert: Optional[torch.Tensor] = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape  # (B, T, d)
        x = x.reshape(-1, shape[-1])  # (N, d)
        N, k, E = x.shape[0], self.cfg.top_k, self.cfg.num_experts
        logits, probs, weights, ids = self.router(x)  # (N, E) (N, E) (N, k) (N, k)
        flat = ids.reshape(-1)  # (N*k,) expert of each (token, slot) pair
        counts = torch.bincount(flat, minlength=E)  # (E,)
        self._record_losses(logits, probs, counts, N * k)
        order = torch.argsort(flat, stable=True)  # pairs grouped by expert
        tokens = x[order // k]  # (N*k, d)
        run = self.run_experts or self.experts
        out = run(tokens, counts, counts.tolist())  # (N*k, d), same order
        out = out * weights.reshape(-1)[order].unsqueeze(-1)
        y = torch.zeros_like(x).index_add_(0, order // k, out)  # sum each token's k outputs
        if self.shared is not None:  # through the local weights: TP replicates them as DTensors
            s = self.shared
            y = y + F.linear(F.silu(F.linear(x, _local(s.w1.weight))) * F.linear(x, _local(s.w3.weight)),
                             _local(s.w2.weight))
        return y.reshape(shape)

    def _record_losses(self, logits: torch.Tensor, probs: torch.Tensor, counts: torch.Tensor, pairs: int) -> None:
        self.tokens_per_expert = counts.detach()
        share = counts.detach().float() / max(pairs, 1)  # f_i, no gradient
        self.lb_loss = self.cfg.num_experts * (share * probs.mean(dim=0)).sum()
        self.z_loss = torch.logsumexp(logits, dim=-1).square().mean()

    def aux_loss(self) -> Optional[torch.Tensor]:
        """The weighted auxiliary loss of the last forward (a per-token mean), None if none."""
        terms = []
        if self.cfg.aux_loss_weight and self.lb_loss is not None:
            terms.append(self.cfg.aux_loss_weight * self.lb_loss)
        if self.cfg.z_loss_weight and self.z_loss is not None:
            terms.append(self.cfg.z_loss_weight * self.z_loss)
        return sum(terms) if terms else None
