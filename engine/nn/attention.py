"""Causal self-attention with grouped-query heads, RoPE, optional QK-norm and an optional
sliding window (engine/nn/sliding_window.py).

QK-norm comes in two shapes: over the whole projected q / k vectors (all heads at once, weights
of size heads x head_dim: OLMo-2, OLMo-3) or over each head's vector with one weight of size
head_dim shared by the heads (Qwen3, Gemma-3). head_dim is free of d_model / n_heads (Qwen3,
Gemma-3), so q and the output projection are (heads x head_dim, d_model) and back.
"""

from __future__ import annotations

import torch
from torch import nn

from engine.config import ModelConfig

from .norm import GemmaRMSNorm, RMSNorm
from .rope import apply_rope
from .sliding_window import Mask, attend


class Attention(nn.Module):
    def __init__(self, cfg: ModelConfig, layer_index: int = 0):
        super().__init__()
        self.head_dim = cfg.head_size
        self.w_q = nn.Linear(cfg.d_model, cfg.q_dim, bias=False)
        self.w_k = nn.Linear(cfg.d_model, cfg.kv_dim, bias=False)
        self.w_v = nn.Linear(cfg.d_model, cfg.kv_dim, bias=False)
        self.w_out = nn.Linear(cfg.q_dim, cfg.d_model, bias=False)
        self.per_head_norm = cfg.per_head_qk_norm
        norm_cls = GemmaRMSNorm if cfg.gemma_blocks else RMSNorm
        q_size, k_size = (self.head_dim, self.head_dim) if self.per_head_norm else (cfg.q_dim, cfg.kv_dim)
        self.q_norm = norm_cls(q_size, cfg.norm_eps) if cfg.qk_norm else None
        self.k_norm = norm_cls(k_size, cfg.norm_eps) if cfg.qk_norm else None
        # Softmax scale: 1/sqrt(query_pre_attn_scalar) (Gemma) or SDPA's default 1/sqrt(head_dim).
        self.scale = cfg.query_pre_attn_scalar ** -0.5 if cfg.query_pre_attn_scalar else None
        self.window = cfg.sliding_window if cfg.is_sliding_layer(layer_index) else None
        # Context parallelism (engine/distributed/context_parallel.py) sets this: x then holds
        # this rank's T/cp tokens and cos / sin their positions' rows.
        self.cp = None

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, mask: Mask = None) -> torch.Tensor:
        # x: (B, T, d). Under tensor parallelism the projections hold only this rank's heads,
        # so the head counts are read off the tensors, not the config. `mask` is this layer's
        # window mask (None: full causal), built once per forward by the Transformer.
        B, T, _ = x.shape
        q, k, v = self.w_q(x), self.w_k(x), self.w_v(x)  # (B, T, H*hd), (B, T, KV*hd) x2
        if self.q_norm is not None and not self.per_head_norm:
            q, k = self.q_norm(q), self.k_norm(k)
        q = q.view(B, T, -1, self.head_dim)
        k = k.view(B, T, -1, self.head_dim)
        v = v.view(B, T, -1, self.head_dim)
        if self.q_norm is not None and self.per_head_norm:
            q, k = self.q_norm(q), self.k_norm(k)  # over hd, per head: (B, T, H, hd)
        q, k = apply_rope(q, cos[:T], sin[:T]), apply_rope(k, cos[:T], sin[:T])
        if self.cp is not None:  # (B, T/cp, H, hd) -> (B, T, H/cp, hd): every position, some heads
            q, k, v = self.cp.to_heads(q), self.cp.to_heads(k), self.cp.to_heads(v)
        # SDPA / FlexAttention want (B, H, T, hd).
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
        out = attend(q, k, v, mask, self.scale).transpose(1, 2)  # (B, T, H, hd)
        if self.cp is not None:
            out = self.cp.to_sequence(out)
        return self.w_out(out.reshape(B, T, -1))


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


def build_standard(cfg, model: ModelConfig, index: int) -> Attention:
    """The built-in attention (registered as "standard" in engine/config/model.py)."""
    return Attention(model, index)
