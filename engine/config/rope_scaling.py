"""RoPE scaling (`model.rope_scaling`): how the rotary frequencies are stretched so that a model
pre-trained at one context length runs at a longer one. The released checkpoints researchers
start from use three kinds: OLMo-3 7B/32B YaRN (8192 -> 65536 tokens), Gemma-3 4B and larger
linear (x8), Llama 3.1 / 3.2 `llama3`. The math is in engine/nn/rope.py.

One section with a `type` choice instead of a pydantic union of four classes: the form, the
dotted overrides and TOML presets all walk a section by its fields, and a flat section keeps
`--model.rope_scaling.type=yarn --model.rope_scaling.factor=8` working. Each type takes only its
own fields; a field of another type is an error naming it (see `_fields_of_the_type`).
"""

from __future__ import annotations

import math
from typing import Dict, Literal, Optional, Tuple

from pydantic import Field, model_validator

from .base import Config
from .errors import field_error

ROPE_SCALING_TYPES = ("none", "linear", "yarn", "llama3")
# type -> (required fields, optional fields); every other field must stay unset.
TYPE_FIELDS: Dict[str, Tuple[Tuple[str, ...], Tuple[str, ...]]] = {
    "none": ((), ()),
    "linear": (("factor",), ()),
    "yarn": (("factor", "original_max_position_embeddings"),
             ("beta_fast", "beta_slow", "attention_factor", "truncate")),
    "llama3": (("factor", "original_max_position_embeddings", "low_freq_factor", "high_freq_factor"), ()),
}
# YaRN's optional betas default to the paper's values (as in transformers).
YARN_BETA_FAST, YARN_BETA_SLOW = 32.0, 1.0

class RopeScalingConfig(Config):
    """RoPE scaling of the full-attention layers; sliding-window layers keep plain RoPE, as in the
    released OLMo-3 and Gemma-3 checkpoints (and transformers' reading of their configs)."""

    type: Literal["none", "linear", "yarn", "llama3"] = Field(
        "none", description="none: plain RoPE. linear: every frequency divided by factor (position "
        "interpolation; Gemma-3 4B+). yarn: low frequencies interpolated, high ones kept, a ramp between, "
        "and cos/sin scaled by attention_factor (OLMo-3 7B/32B). llama3: Llama 3.1's bands: low "
        "frequencies divided by factor, high ones kept, a smooth blend between.",
    )
    factor: Optional[float] = Field(
        None, ge=1, description="linear, yarn, llama3 (required): how many times longer the new context "
        "is than original_max_position_embeddings (OLMo-3: 8, Gemma-3: 8, Llama 3.1: 8, Llama 3.2: 32).",
    )
    original_max_position_embeddings: Optional[int] = Field(
        None, gt=0, description="yarn, llama3 (required): the pre-training context length, in tokens, "
        "that the frequency bands are measured against (OLMo-3: 8192, Llama 3.1: 8192).",
    )
    beta_fast: Optional[float] = Field(
        None, gt=0, description="yarn: dimensions turning more than this many times over the original "
        "context keep their frequency (extrapolate); unset = 32.",
    )
    beta_slow: Optional[float] = Field(
        None, gt=0, description="yarn: dimensions turning fewer than this many times over the original "
        "context are fully interpolated (divided by factor); unset = 1.",
    )
    attention_factor: Optional[float] = Field(
        None, gt=0, description="yarn: cos and sin are multiplied by this (so attention logits by its "
        "square); unset = 0.1 ln(factor) + 1, the YaRN paper's value (1.2079 for factor 8).",
    )
    truncate: Optional[bool] = Field(
        None, description="yarn: round the ramp's ends to whole dimensions (floor / ceil); unset = true. "
        "false only for families without per-layer-type RoPE (transformers reads it only there).",
    )
    low_freq_factor: Optional[float] = Field(
        None, gt=0, description="llama3 (required): wavelengths longer than original_max_position_embeddings "
        "/ low_freq_factor are divided by factor (Llama 3.1: 1).",
    )
    high_freq_factor: Optional[float] = Field(
        None, gt=0, description="llama3 (required): wavelengths shorter than original_max_position_embeddings "
        "/ high_freq_factor are kept (Llama 3.1: 4).",
    )

    @model_validator(mode="after")
    def _fields_of_the_type(self) -> "RopeScalingConfig":
        required, optional = TYPE_FIELDS[self.type]
        for name in required:
            if getattr(self, name) is None:
                raise field_error(name, f"required for type '{self.type}' "
                                  f"({self.type} takes: {_takes(self.type)})")
        for name in type(self).model_fields:
            if name != "type" and name not in required + optional and getattr(self, name) is not None:
                users = [kind for kind, (req, opt) in TYPE_FIELDS.items() if name in req + opt]
                raise field_error(name, f"is a setting of type {' / '.join(users)}, not '{self.type}' "
                                  f"({self.type} takes: {_takes(self.type)}); unset it")
        if self.type == "yarn" and self.beta_fast_value <= self.beta_slow_value:
            raise field_error("beta_fast", f"must be greater than beta_slow ({self.beta_fast_value:g} <= "
                              f"{self.beta_slow_value:g})")
        if self.type == "llama3" and self.high_freq_factor <= self.low_freq_factor:
            raise field_error("high_freq_factor", f"must be greater than low_freq_factor "
                              f"({self.high_freq_factor:g} <= {self.low_freq_factor:g})")
        return self

    # ---- values with the unset ones resolved ----------------------------------------------
    @property
    def enabled(self) -> bool:
        return self.type != "none"

    @property
    def beta_fast_value(self) -> float:
        return YARN_BETA_FAST if self.beta_fast is None else self.beta_fast

    @property
    def beta_slow_value(self) -> float:
        return YARN_BETA_SLOW if self.beta_slow is None else self.beta_slow

    @property
    def truncate_value(self) -> bool:
        return True if self.truncate is None else self.truncate

    @property
    def attention_scale(self) -> float:
        """What cos and sin are multiplied by: YaRN's attention factor, 1 for the other types."""
        if self.type != "yarn":
            return 1.0
        if self.attention_factor is not None:
            return self.attention_factor
        return 0.1 * math.log(self.factor) + 1.0 if self.factor > 1 else 1.0

    @property
    def scaled_context(self) -> Optional[int]:
        """The context length the scaling was made for (factor x original), where one is known."""
        if self.original_max_position_embeddings is None or self.factor is None:
            return None
        return int(round(self.factor * self.original_max_position_embeddings))


def _takes(kind: str) -> str:
    required, optional = TYPE_FIELDS[kind]
    return ", ".join(required + optional) or "no other fields"
