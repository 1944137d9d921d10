"""Causal attention with an optional sliding window: query i attends keys i - window + 1 .. i
(HF's convention: the window counts the query's own position).

A window is given to `attend` as a mask object built once per forward by `window_mask`:

  None              the whole causal prefix (full layers, or T <= window, where the band is the
                    whole causal triangle): SDPA's causal kernel (flash / cuDNN), exact.
  bool (T, T)       kernel "sdpa": SDPA with a band mask. Every score is still computed and
                    masked, and a mask rules out the flash kernel (mem-efficient runs instead).
  BlockMask         kernel "flex": FlexAttention, which skips the 128 x 128 tiles lying wholly
                    outside the band, so its cost grows with T x window instead of T^2.
                    It needs torch.compile; the compiled kernel is built once here (a compiled
                    block traces flex_attention directly).

KERNEL = "auto" picks flex on CUDA and sdpa elsewhere (FlexAttention has no fast CPU path).
Measured on an H200 in docs/BENCHMARKS.md (benchmarks/model_families.py).
"""

from __future__ import annotations

from typing import Dict, Optional, Tuple, Union

import torch
import torch.nn.functional as F

KERNEL = "auto"  # "auto" | "sdpa" | "flex"

Mask = Union[None, torch.Tensor, "BlockMask"]  # noqa: F821 (flex_attention's BlockMask)
_MASKS: Dict[Tuple[str, int, int, str], object] = {}
_COMPILED_FLEX = None


def kernel_for(device: torch.device) -> str:
    if KERNEL != "auto":
        return KERNEL
    return "flex" if device.type == "cuda" else "sdpa"


def window_mask(seq_len: int, window: Optional[int], device: torch.device) -> Mask:
    """The mask object for `attend` (cached per length, window, device and kernel)."""
    if window is None or seq_len <= window:
        return None
    kind = kernel_for(device)
    key = (kind, seq_len, window, str(device))
    if key not in _MASKS:
        if len(_MASKS) > 16:  # a handful of lengths in practice (training, eval); bound it anyway
            _MASKS.clear()
        _MASKS[key] = _flex_mask(seq_len, window, device) if kind == "flex" else _band(seq_len, window, device)
    return _MASKS[key]


def _band(seq_len: int, window: int, device: torch.device) -> torch.Tensor:
    q = torch.arange(seq_len, device=device)[:, None]
    k = torch.arange(seq_len, device=device)[None, :]
    return (k <= q) & (k > q - window)  # (T, T), True = attend


def _flex_mask(seq_len: int, window: int, device: torch.device):
    from torch.nn.attention.flex_attention import create_block_mask

    def in_window(b, h, q_idx, kv_idx):
        return (kv_idx <= q_idx) & (kv_idx > q_idx - window)

    # B and H None: one mask broadcast over the batch and (this rank's) heads.
    return create_block_mask(in_window, None, None, seq_len, seq_len, device=device)


def _flex(q, k, v, block_mask, scale, gqa):
    global _COMPILED_FLEX
    from torch.nn.attention.flex_attention import flex_attention

    if torch.compiler.is_compiling():
        return flex_attention(q, k, v, block_mask=block_mask, scale=scale, enable_gqa=gqa)
    if _COMPILED_FLEX is None:
        _COMPILED_FLEX = torch.compile(flex_attention, dynamic=False)
    return _COMPILED_FLEX(q, k, v, block_mask=block_mask, scale=scale, enable_gqa=gqa)


def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: Mask, scale: Optional[float]) -> torch.Tensor:
    """q: (B, H, T, hd), k / v: (B, KV, T, hd) -> (B, H, T, hd). scale None = 1/sqrt(hd)."""
    gqa = q.shape[1] != k.shape[1]
    if mask is None:
        return F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=scale, enable_gqa=gqa)
    if isinstance(mask, torch.Tensor):
        if gqa and q.device.type == "cuda":  # the masked CUDA kernels take equal head counts
            repeat = q.shape[1] // k.shape[1]
            k, v, gqa = k.repeat_interleave(repeat, dim=1), v.repeat_interleave(repeat, dim=1), False
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=scale, enable_gqa=gqa)
    return _flex(q, k, v, mask, scale, gqa)
