"""Rotary position embeddings (RoPE, Su et al. 2021) in the "rotate half" layout used by
Llama and OLMo: the first half of each head's dims pairs with the second half.

Pair i of a head of size d turns at the frequency w_i = theta^(-2i/d) radians per token. RoPE
scaling (model.rope_scaling) changes these frequencies so that a model pre-trained on L tokens
runs at s x L (s = factor); which pairs change is decided by how many turns a pair makes over
the pre-training context, r_i = L w_i / (2 pi):

- linear (position interpolation, Chen et al. 2023): every w_i / s.
- llama3 (Llama 3.1): by wavelength 2 pi / w_i: longer than L / low_freq_factor -> w_i / s;
  shorter than L / high_freq_factor -> w_i; between, a blend whose weight on w_i grows linearly
  with r_i from low_freq_factor to high_freq_factor.
- yarn (Peng et al. 2023, "NTK-by-parts"): pairs with r_i > beta_fast keep w_i, pairs with
  r_i < beta_slow get w_i / s, a linear ramp in the pair index between; and cos / sin are
  multiplied by the attention factor (0.1 ln s + 1 unless set), which sharpens the softmax that
  interpolation flattened.
"""

from __future__ import annotations

import math
from typing import Optional, Tuple

import torch

from engine.config.rope_scaling import RopeScalingConfig


def _wavelength_powers(head_dim: int, theta: float, device=None) -> torch.Tensor:
    """theta^(2i/d) for the d/2 pairs, float32, shape (hd/2,): 1 / w_i."""
    return theta ** (torch.arange(0, head_dim, 2, device=device, dtype=torch.float32) / head_dim)


def base_frequencies(head_dim: int, theta: float, device=None) -> torch.Tensor:
    """w_i = theta^(-2i/d) for the d/2 pairs, float32, shape (hd/2,)."""
    return 1.0 / _wavelength_powers(head_dim, theta, device)


def scaled_frequencies(head_dim: int, theta: float, scaling: Optional[RopeScalingConfig],
                       device=None) -> Tuple[torch.Tensor, float]:
    """(frequencies (hd/2,) float32, factor cos and sin are multiplied by) for one layer type."""
    freqs = base_frequencies(head_dim, theta, device)
    if scaling is None or not scaling.enabled:
        return freqs, 1.0
    s = scaling.factor
    if scaling.type == "linear":
        return freqs / s, 1.0
    if scaling.type == "llama3":
        return _llama3(freqs, scaling), 1.0
    return _yarn(freqs, head_dim, theta, scaling), scaling.attention_scale


def _llama3(freqs: torch.Tensor, scaling: RopeScalingConfig) -> torch.Tensor:
    context, s = scaling.original_max_position_embeddings, scaling.factor
    low, high = scaling.low_freq_factor, scaling.high_freq_factor
    wavelength = 2 * math.pi / freqs
    # Turns over the original context, placed on [0, 1] between the two band edges.
    blend = ((context / wavelength - low) / (high - low)).clamp(0.0, 1.0)
    blended = (1 - blend) * freqs / s + blend * freqs
    kept = torch.where(wavelength < context / high, freqs, blended)
    return torch.where(wavelength > context / low, freqs / s, kept)


def _yarn(freqs: torch.Tensor, head_dim: int, theta: float, scaling: RopeScalingConfig) -> torch.Tensor:
    context, s = scaling.original_max_position_embeddings, scaling.factor

    def pair_turning(turns: float) -> float:
        # The (fractional) pair index whose r_i equals `turns`: solve L theta^(-2i/d) = 2 pi turns.
        return head_dim * math.log(context / (2 * math.pi * turns)) / (2 * math.log(theta))

    first, last = pair_turning(scaling.beta_fast_value), pair_turning(scaling.beta_slow_value)
    if scaling.truncate_value:
        first, last = math.floor(first), math.ceil(last)
    first, last = max(first, 0), min(last, head_dim - 1)
    if first == last:
        last += 1e-3  # a zero-width ramp would divide by zero; this makes it a step
    index = torch.arange(head_dim // 2, device=freqs.device, dtype=torch.float32)
    keep = 1 - ((index - first) / (last - first)).clamp(0.0, 1.0)  # 1: keep w_i, 0: w_i / s
    # 1 / (s theta^(2i/d)) rather than w_i / s, and this order of the blend: the float32 roundings
    # of transformers, so the tables agree to the bit and long sequences do not drift apart.
    interpolated = 1.0 / (s * _wavelength_powers(head_dim, theta, freqs.device))
    return interpolated * (1 - keep) + freqs * keep


def rope_tables(head_dim: int, seq_len: int, theta: float, device,
                scaling: Optional[RopeScalingConfig] = None) -> Tuple[torch.Tensor, torch.Tensor]:
    """cos and sin tables of shape (seq_len, head_dim), in float32, scaled as `scaling` says."""
    freqs, magnitude = scaled_frequencies(head_dim, theta, scaling, device)
    positions = torch.arange(seq_len, device=device, dtype=torch.float32)
    angles = torch.outer(positions, freqs)  # (T, hd/2)
    angles = torch.cat((angles, angles), dim=-1)  # (T, hd)
    if magnitude == 1.0:
        return angles.cos(), angles.sin()
    return angles.cos() * magnitude, angles.sin() * magnitude


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """x: (B, T, H, hd); cos/sin: (T, hd) float32. Rotation in fp32, result in x's dtype."""
    cos = cos[None, :, None, :]
    sin = sin[None, :, None, :]
    xf = x.float()
    return (xf * cos + rotate_half(xf) * sin).to(x.dtype)
