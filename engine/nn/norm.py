"""RMSNorm: x / rms(x) * weight, computed in float32 and cast back (bf16 sums lose digits)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class RMSNorm(nn.Module):
    def __init__(self, size: int, eps: float = 1e-5):
        super().__init__()
        self.size = size
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(size))
        # Set by tensor parallelism for QK-norm: x then holds only this rank's slice of the
        # normalised dims (and the weight is sharded to match); the mean square is summed over
        # the group.
        self.tp_mesh = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (..., size). The reduction runs in fp32 whatever the input dtype; the weight is
        # applied in the input dtype, as OLMo-core and HF Llama do.
        if self.tp_mesh is not None:
            return self._forward_sharded(x)
        normed = F.rms_norm(x.float(), (x.shape[-1],), eps=self.eps).to(x.dtype)
        return normed * self.weight.to(x.dtype)

    def _forward_sharded(self, x: torch.Tensor) -> torch.Tensor:
        from torch.distributed._functional_collectives import all_gather_tensor_autograd

        # x: (..., size / tp). Gather every rank's sum of squares (differentiable, traceable),
        # add them up: the same mean square as over the unsharded vector.
        xf = x.float()
        local = xf.square().sum(-1, keepdim=True)  # (..., 1)
        gathered = all_gather_tensor_autograd(local, gather_dim=local.dim() - 1, group=self.tp_mesh.get_group())
        mean_square = gathered.sum(-1, keepdim=True) / self.size
        normed = (xf * torch.rsqrt(mean_square + self.eps)).to(x.dtype)
        return normed * self.weight.to_local().to(x.dtype)

    def reset_parameters(self) -> None:
        nn.init.ones_(self.weight)

    def extra_repr(self) -> str:
        return f"{self.size}, eps={self.eps}"


class GemmaRMSNorm(RMSNorm):
    """Gemma's RMSNorm: x / rms(x) * (1 + weight), all in float32, then cast back.

    The weight is stored as an offset from 1 (HF's Gemma checkpoints hold it that way), so it is
    initialised to 0; computing the scale in fp32 matches HF's Gemma3RMSNorm bit for bit in fp32.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (..., size); under tensor parallelism x and weight are DTensors (SequenceParallel)
        normed = F.rms_norm(x.float(), (x.shape[-1],), eps=self.eps)
        return (normed * (1.0 + self.weight.float())).to(x.dtype)

    def reset_parameters(self) -> None:
        nn.init.zeros_(self.weight)


def build_rms(cfg, model, dim: int) -> RMSNorm:
    """The built-in norm (registered as "rms" in engine/config/model.py)."""
    return (GemmaRMSNorm if model.gemma_blocks else RMSNorm)(dim, model.norm_eps)
