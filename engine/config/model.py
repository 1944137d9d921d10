"""Transformer architecture config, with the parameter and FLOP arithmetic shared by the
engine (which checks it against real tensors) and the app's pre-flight estimates."""

from __future__ import annotations

from typing import Literal, Optional

from pydantic import Field, model_validator

from .base import Config, DType


def round_up(x: int, multiple: int) -> int:
    return multiple * ((x + multiple - 1) // multiple)


class ModelConfig(Config):
    """A decoder-only transformer: Llama (pre-norm) or OLMo-2 (reordered norm + QK-norm)."""

    family: Literal["llama", "olmo2"] = Field(
        "llama",
        description="Block layout. llama: pre-norm RMSNorm blocks. olmo2: norm applied to each "
        "sub-layer's output (reordered norm), usually with QK-norm.",
    )
    d_model: int = Field(256, gt=0, description="Hidden size (width), in features.")
    n_layers: int = Field(4, gt=0, description="Number of transformer blocks.")
    n_heads: int = Field(4, gt=0, description="Attention (query) heads per block.")
    n_kv_heads: Optional[int] = Field(
        None, gt=0, description="Key/value heads for grouped-query attention; unset = n_heads (plain MHA)."
    )
    mlp_hidden_size: Optional[int] = Field(
        None, gt=0, description="SwiGLU hidden size, in features; unset = derived from mlp_multiplier."
    )
    mlp_multiplier: float = Field(
        1.0, gt=0, description="When mlp_hidden_size is unset: hidden = multiplier x 8/3 x d_model, "
        "rounded up to mlp_multiple_of (Llama's rule)."
    )
    mlp_multiple_of: int = Field(256, gt=0, description="Rounding multiple for the derived MLP hidden size.")
    vocab_size: int = Field(384, gt=0, description="Embedding rows, in tokens; pad the tokenizer's vocab "
                            "up to a multiple of 128 for fast matmuls.")
    rope_theta: float = Field(10_000.0, gt=0, description="RoPE base frequency (theta).")
    norm_eps: float = Field(1e-5, gt=0, description="RMSNorm epsilon.")
    qk_norm: bool = Field(False, description="RMSNorm on queries and keys before attention (OLMo-2).")
    tie_embeddings: bool = Field(False, description="Share the input embedding with the output head.")
    init_std: float = Field(0.02, gt=0, description="Std of the normal init of weights (output "
                            "projections are scaled by 1/sqrt(2 x n_layers)).")
    dtype: DType = Field(DType.float32, description="Dtype of the master weights (mixed precision is set "
                         "in train_module.dp_config / autocast).")

    @model_validator(mode="after")
    def _shapes(self) -> "ModelConfig":
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model ({self.d_model}) must be divisible by n_heads ({self.n_heads})")
        if self.n_heads % self.kv_heads:
            raise ValueError(f"n_heads ({self.n_heads}) must be divisible by n_kv_heads ({self.kv_heads})")
        if self.head_dim % 2:
            raise ValueError(f"head dim d_model/n_heads = {self.head_dim} must be even for RoPE")
        return self

    # ---- derived shapes -------------------------------------------------------------------
    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads

    @property
    def kv_heads(self) -> int:
        return self.n_kv_heads or self.n_heads

    @property
    def mlp_hidden(self) -> int:
        if self.mlp_hidden_size is not None:
            return self.mlp_hidden_size
        return round_up(int(self.mlp_multiplier * 8 * self.d_model / 3), self.mlp_multiple_of)

    # ---- arithmetic (must match engine.model.Transformer, tested for every preset) ------
    def block_matmul_params(self) -> int:
        d, kv = self.d_model, self.kv_heads * self.head_dim
        attention = d * d + 2 * d * kv + d * d  # q, k, v, out projections (no biases)
        mlp = 3 * d * self.mlp_hidden  # SwiGLU: gate, up, down
        return attention + mlp

    def block_norm_params(self) -> int:
        norms = 2 * self.d_model  # attention and MLP norms (pre- or post-, by family)
        if self.qk_norm:
            norms += self.d_model + self.kv_heads * self.head_dim
        return norms

    def num_embedding_params(self) -> int:
        return self.vocab_size * self.d_model

    def num_params(self) -> int:
        head = 0 if self.tie_embeddings else self.vocab_size * self.d_model
        blocks = self.n_layers * (self.block_matmul_params() + self.block_norm_params())
        return self.num_embedding_params() + blocks + self.d_model + head  # + final norm

    def num_non_embedding_params(self) -> int:
        return self.num_params() - self.num_embedding_params()

    def num_matmul_params(self) -> int:
        """Weights that take part in a matmul per token: every block projection plus the output head."""
        return self.n_layers * self.block_matmul_params() + self.vocab_size * self.d_model

    def num_flops_per_token(self, seq_len: int) -> int:
        """Training FLOPs per token = 6 x matmul params + 12 x layers x heads x head_dim x seq_len.

        A matmul weight costs 2 FLOPs per token forward (multiply + add) and 4 backward (grads
        of input and weight): 6 per parameter. Attention scores (QK^T) and their use (AV) are two
        more matmuls of size head_dim x seq_len per head, again x6 for forward + backward = 12.
        Causal masking is not discounted (PaLM appendix B; nanochat's estimate_flops).
        """
        attention = 12 * self.n_layers * self.n_heads * self.head_dim * seq_len
        return 6 * self.num_matmul_params() + attention
