"""Causal self-attention with grouped-query heads, RoPE and optional QK-norm (OLMo-2)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .norm import RMSNorm
from .rope import apply_rope


class Attention(nn.Module):
    def __init__(self, d_model: int, n_heads: int, n_kv_heads: int, qk_norm: bool, norm_eps: float):
        super().__init__()
        self.head_dim = d_model // n_heads
        kv_dim = n_kv_heads * self.head_dim
        self.w_q = nn.Linear(d_model, d_model, bias=False)
        self.w_k = nn.Linear(d_model, kv_dim, bias=False)
        self.w_v = nn.Linear(d_model, kv_dim, bias=False)
        self.w_out = nn.Linear(d_model, d_model, bias=False)
        # QK-norm over the whole projected q / k vectors (all heads at once), as OLMo-2 does.
        self.q_norm = RMSNorm(d_model, norm_eps) if qk_norm else None
        self.k_norm = RMSNorm(kv_dim, norm_eps) if qk_norm else None

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        # x: (B, T, d). Under tensor parallelism the projections hold only this rank's heads,
        # so the head counts are read off the tensors, not the config.
        B, T, _ = x.shape
        q, k, v = self.w_q(x), self.w_k(x), self.w_v(x)  # (B, T, H*hd), (B, T, KV*hd) x2
        if self.q_norm is not None:
            q, k = self.q_norm(q), self.k_norm(k)
        q = q.view(B, T, -1, self.head_dim)
        k = k.view(B, T, -1, self.head_dim)
        v = v.view(B, T, -1, self.head_dim)
        q, k = apply_rope(q, cos[:T], sin[:T]), apply_rope(k, cos[:T], sin[:T])
        # SDPA wants (B, H, T, hd).
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
        gqa = q.shape[1] != k.shape[1]
        out = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=gqa)  # (B, H, T, hd)
        return self.w_out(out.transpose(1, 2).reshape(B, T, -1))


def set_sdpa_backend(name: str) -> None:
    """Choose the CUDA kernel behind scaled_dot_product_attention for the whole process.

    "auto": torch's own choice (flash attention 2 on Hopper for bf16); "cudnn": cuDNN's fused
    attention, faster than FA2 on H100 (see docs/BENCHMARKS.md); "flash": FA2 only. Flags are
    read when a kernel is picked, so set them before the first (compiled) forward.
    """
    import torch.backends.cuda as cuda_backends

    enable = {"auto": dict(flash=True, mem=True, math=True, cudnn=True),
              "cudnn": dict(flash=False, mem=False, math=True, cudnn=True),
              "flash": dict(flash=True, mem=False, math=True, cudnn=False)}[name]
    cuda_backends.enable_flash_sdp(enable["flash"])
    cuda_backends.enable_mem_efficient_sdp(enable["mem"])
    cuda_backends.enable_math_sdp(enable["math"])
    cuda_backends.enable_cudnn_sdp(enable["cudnn"])
