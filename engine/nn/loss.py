"""Cross-entropy and z-loss as sums over non-ignored tokens (the caller divides by the global
token count, so the result does not depend on how the batch was split)."""

from __future__ import annotations

from typing import Optional, Tuple

import torch


def cross_entropy_sums(
    logits: torch.Tensor, labels: torch.Tensor, ignore_index: int, with_z_loss: bool
) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
    """logits: (N, V) any float dtype; labels: (N,) long. Returns (ce_sum, z_sum or None), fp32.

    The logsumexp runs in fp32 (bf16 logits lose the small differences that matter here); under
    torch.compile the upcast fuses into the reduction so no fp32 copy of the logits is stored.
    """
    logits = logits.float()
    lse = torch.logsumexp(logits, dim=-1)  # (N,)
    keep = labels != ignore_index
    target = logits.gather(-1, labels.masked_fill(~keep, 0).unsqueeze(-1)).squeeze(-1)  # (N,)
    ce_sum = torch.where(keep, lse - target, 0.0).sum()
    z_sum = torch.where(keep, lse.square(), 0.0).sum() if with_z_loss else None
    return ce_sum, z_sum


def build_cross_entropy(_own):
    """The built-in loss (registered as "cross_entropy" in engine/config/train_module.py)."""
    return cross_entropy_sums
