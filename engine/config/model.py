"""Transformer architecture config, with the parameter and FLOP arithmetic shared by the
engine (which checks it against real tensors) and the app's pre-flight estimates."""

from __future__ import annotations

from typing import List, Literal, Optional

from pydantic import Field, model_validator

from .extensions.registry import register
from .extensions.schema import choice_section

from .base import Config, DType
from .moe import GROUPED_MM_MULTIPLE, MoEConfig
from .rope_scaling import RopeScalingConfig


def round_up(x: int, multiple: int) -> int:
    return multiple * ((x + multiple - 1) // multiple)


FAMILIES = ("llama", "olmo2", "olmo3", "qwen3", "gemma3")
# Families whose QK-norm normalises each head's vector (weights of size head_dim, shared by the
# heads) rather than the whole projection (OLMo-2/3: weights of size heads x head_dim).
PER_HEAD_QK_NORM = ("qwen3", "gemma3")
# Families with interleaved sliding-window (local) and full (global) attention layers.
SLIDING_WINDOW_FAMILIES = ("olmo3", "gemma3")


class GatedMLPConfig(Config):
    """The family's gated MLP: SwiGLU, GeGLU (tanh GELU) for gemma3; hidden size from model.mlp_*."""

    def matmul_params(self, model: "ModelConfig") -> int:
        """Weights per block, for the estimates and MFU: gate, up and down projections."""
        return 3 * model.d_model * model.mlp_hidden


# The built-in model parts, registered like an extension's (engine/extend.py): each kind is a
# section of ModelConfig whose `kind` picks one; an extension's part adds its own fields there.
register("mlp", "gated", "engine.nn.mlp:build_gated", GatedMLPConfig)
register("attention", "standard", "engine.nn.attention:build_standard", None,
         "Grouped-query causal attention with RoPE, QK-norm and sliding windows as model.* set them.")
register("norm", "rms", "engine.nn.norm:build_rms", None, "RMSNorm (Gemma's x (1 + w) for gemma3).")
register("block", "standard", "engine.nn.transformer:build_block", None,
         "The family's block layout (pre-norm, reordered norm or sandwich; see model.family).")
MLPConfig = choice_section("mlp", "MLPConfig", "gated", "The feed-forward of every block.", __name__)
AttentionConfig = choice_section("attention", "AttentionConfig", "standard", "The attention of every block.",
                                 __name__)
NormConfig = choice_section("norm", "NormConfig", "rms", "Every norm of the model (blocks and final).", __name__)
BlockConfig = choice_section("block", "BlockConfig", "standard", "How a block wires attention, MLP and norms.",
                             __name__)


class ModelConfig(Config):
    """A decoder-only transformer of one of five block layouts (see `family`)."""

    family: Literal["llama", "olmo2", "olmo3", "qwen3", "gemma3"] = Field(
        "llama",
        description="Block layout. llama: pre-norm RMSNorm blocks. olmo2: norm applied to each "
        "sub-layer's output (reordered norm), usually with QK-norm. olmo3: olmo2 blocks with "
        "sliding-window attention on most layers. qwen3: llama blocks with per-head QK-norm. "
        "gemma3: norms before and after attention and MLP, Gemma RMSNorm (x (1 + w)), embeddings "
        "scaled by sqrt(d_model), GELU-tanh gated MLP, local/global attention layers.",
    )
    d_model: int = Field(256, gt=0, description="Hidden size (width), in features.")
    n_layers: int = Field(4, gt=0, description="Number of transformer blocks.")
    n_heads: int = Field(4, gt=0, description="Attention (query) heads per block.")
    n_kv_heads: Optional[int] = Field(
        None, gt=0, description="Key/value heads for grouped-query attention; unset = n_heads (plain MHA)."
    )
    head_dim: Optional[int] = Field(
        None, gt=0, description="Features per attention head; unset = d_model / n_heads. Qwen3 and "
        "Gemma-3 set it independently (Qwen3-0.6B: 16 heads x 128 features with d_model 1024).",
    )
    mlp_hidden_size: Optional[int] = Field(
        None, gt=0, description="Gated-MLP hidden size, in features; unset = derived from mlp_multiplier."
    )
    mlp_multiplier: float = Field(
        1.0, gt=0, description="When mlp_hidden_size is unset: hidden = multiplier x 8/3 x d_model, "
        "rounded up to mlp_multiple_of (Llama's rule)."
    )
    mlp_multiple_of: int = Field(256, gt=0, description="Rounding multiple for the derived MLP hidden size.")
    vocab_size: int = Field(384, gt=0, description="Embedding rows, in tokens; pad the tokenizer's vocab "
                            "up to a multiple of 128 for fast matmuls.")
    rope_theta: float = Field(10_000.0, gt=0, description="RoPE base frequency (theta) of the full-attention "
                              "layers (all layers without a sliding window).")
    rope_local_theta: Optional[float] = Field(
        None, gt=0, description="RoPE base frequency of the sliding-window layers; unset = rope_theta. "
        "Gemma-3 uses 10000 locally and 1000000 on its global layers.",
    )
    sliding_window: Optional[int] = Field(
        None, gt=0, description="Tokens a sliding-window layer attends to (itself and the window - 1 "
        "before it, HF's convention); unset = every layer attends to the whole causal prefix. "
        "Families olmo3 (4096) and gemma3 (512 on the 1B).",
    )
    full_attention_interval: int = Field(
        4, gt=0, description="With sliding_window: every N-th layer (N, 2N, ... counted from 1) attends "
        "to the whole sequence, the others to the window. OLMo-3: 4 (3 local : 1 global), Gemma-3: 6 (5:1).",
    )
    query_pre_attn_scalar: Optional[float] = Field(
        None, gt=0, description="Attention scores are scaled by 1/sqrt(this); unset = head_dim (the usual "
        "1/sqrt(head_dim)). Gemma-3 sets it in its config.",
    )
    final_logit_softcap: Optional[float] = Field(
        None, gt=0, description="Output logits become cap x tanh(logits / cap) (Gemma-2 used 30; the "
        "released Gemma-3 models have none); unset = no capping.",
    )
    norm_eps: float = Field(1e-5, gt=0, description="RMSNorm epsilon.")
    qk_norm: bool = Field(False, description="RMSNorm on queries and keys before attention: over the whole "
                          "projection for olmo2/olmo3 (and llama), per head for qwen3/gemma3.")
    tie_embeddings: bool = Field(False, description="Share the input embedding with the output head.")
    init_std: float = Field(0.02, gt=0, description="Std of the normal init of weights (output "
                            "projections are scaled by 1/sqrt(2 x n_layers)).")
    dtype: DType = Field(DType.float32, description="Dtype of the master weights (mixed precision is set "
                         "in train_module.dp_config / autocast).")
    rope_scaling: RopeScalingConfig = Field(
        default_factory=RopeScalingConfig, description="RoPE scaling (linear, YaRN, Llama 3.1) of the "
        "full-attention layers, as in long-context releases (OLMo-3 7B/32B: YaRN x8 from 8192; Gemma-3 4B+: "
        "linear x8; Llama 3.1: llama3 x8). Sliding-window layers keep plain RoPE. Pre-training: type none.",
    )

    moe: Optional[MoEConfig] = Field(
        None, description="Mixture-of-experts feed-forward (OLMoE): top-k routed gated-MLP experts in "
        "place of the MLP in every block but moe.dense_layers; unset = a dense model.",
    )
    mlp: MLPConfig = Field(default_factory=MLPConfig, description="Feed-forward variant of the blocks.")
    attention: AttentionConfig = Field(default_factory=AttentionConfig, description="Attention variant.")
    norm: NormConfig = Field(default_factory=NormConfig, description="Norm variant.")
    block: BlockConfig = Field(default_factory=BlockConfig, description="Block layout variant.")

    @model_validator(mode="after")
    def _shapes(self) -> "ModelConfig":
        if self.head_dim is None and self.d_model % self.n_heads:
            raise ValueError(f"d_model ({self.d_model}) must be divisible by n_heads ({self.n_heads}) "
                             "unless model.head_dim is set")
        if self.n_heads % self.kv_heads:
            raise ValueError(f"n_heads ({self.n_heads}) must be divisible by n_kv_heads ({self.kv_heads})")
        if self.head_size % 2:
            raise ValueError(f"head dim {self.head_size} must be even for RoPE")
        if self.moe is not None:
            if any(i >= self.n_layers for i in self.moe.dense_layers):
                raise ValueError(f"moe.dense_layers {self.moe.dense_layers} name blocks past n_layers ({self.n_layers})")
            if self.moe.implementation == "grouped" and self.d_model % GROUPED_MM_MULTIPLE:
                raise ValueError(f"d_model ({self.d_model}) must be a multiple of {GROUPED_MM_MULTIPLE} for "
                                 "moe.implementation 'grouped'; use 'loop'")
        return self

    # ---- derived shapes -------------------------------------------------------------------
    @property
    def head_size(self) -> int:
        """Features per head: head_dim when set, else d_model / n_heads."""
        return self.head_dim if self.head_dim is not None else self.d_model // self.n_heads

    @property
    def kv_heads(self) -> int:
        return self.n_kv_heads or self.n_heads

    @property
    def q_dim(self) -> int:
        return self.n_heads * self.head_size

    @property
    def kv_dim(self) -> int:
        return self.kv_heads * self.head_size

    @property
    def mlp_hidden(self) -> int:
        if self.mlp_hidden_size is not None:
            return self.mlp_hidden_size
        return round_up(int(self.mlp_multiplier * 8 * self.d_model / 3), self.mlp_multiple_of)

    @property
    def per_head_qk_norm(self) -> bool:
        return self.family in PER_HEAD_QK_NORM

    @property
    def gemma_blocks(self) -> bool:
        """Gemma's block: pre + post norms, (1 + w) norms, scaled embeddings, GELU-tanh MLP."""
        return self.family == "gemma3"

    def is_sliding_layer(self, index: int) -> bool:
        """Whether block `index` (0-based) attends to a sliding window (HF's layer_types rule)."""
        return self.sliding_window is not None and (index + 1) % self.full_attention_interval != 0

    def layer_types(self) -> List[str]:
        """HF's spelling of the attention pattern, one entry per layer."""
        return ["sliding_attention" if self.is_sliding_layer(i) else "full_attention" for i in range(self.n_layers)]

    def is_moe_layer(self, index: int) -> bool:
        """Whether block `index` (0-based) has the mixture-of-experts feed-forward."""
        return self.moe is not None and self.moe.is_moe_layer(index)

    def num_moe_layers(self) -> int:
        return sum(self.is_moe_layer(i) for i in range(self.n_layers))

    # ---- arithmetic (must match engine.model.Transformer, tested for every preset) ------
    def attention_matmul_params(self) -> int:
        return 2 * self.d_model * self.q_dim + 2 * self.d_model * self.kv_dim  # q, out and k, v (no biases)

    def feed_forward_params(self, index: int, active: bool = False) -> int:
        """Feed-forward weights of block `index`: the gated MLP (gate, up, down), or for an MoE block
        the router, the experts (only top_k of them when `active`) and the shared experts."""
        d = self.d_model
        if not self.is_moe_layer(index):
            mlp_cfg = self.mlp.component_config()
            # An extension's MLP counts its own weights (matmul_params); else it is taken as gated.
            return mlp_cfg.matmul_params(self) if hasattr(mlp_cfg, "matmul_params") else 3 * d * self.mlp_hidden
        moe = self.moe
        experts = moe.top_k if active else moe.num_experts
        return d * moe.num_experts + (experts + moe.num_shared_experts) * 3 * d * moe.hidden_size

    def block_matmul_params(self, index: int = 0, active: bool = False) -> int:
        return self.attention_matmul_params() + self.feed_forward_params(index, active)

    def block_norm_params(self) -> int:
        # attention and MLP norms (pre- or post-, by family); Gemma has both pre and post norms
        norms = (4 if self.gemma_blocks else 2) * self.d_model
        if self.qk_norm:
            norms += 2 * self.head_size if self.per_head_qk_norm else self.q_dim + self.kv_dim
        return norms

    def num_embedding_params(self) -> int:
        return self.vocab_size * self.d_model

    def _blocks_params(self, active: bool) -> int:
        return sum(self.block_matmul_params(i, active) + self.block_norm_params() for i in range(self.n_layers))

    def num_params(self) -> int:
        head = 0 if self.tie_embeddings else self.vocab_size * self.d_model
        return self.num_embedding_params() + self._blocks_params(False) + self.d_model + head  # + final norm

    def num_active_params(self) -> int:
        """Parameters one token uses: num_params less the experts it is not routed to (= num_params
        for a dense model)."""
        return self.num_params() - self._blocks_params(False) + self._blocks_params(True)

    def num_expert_params(self) -> int:
        """Routed experts' weights (what expert parallelism shards); 0 for a dense model."""
        if self.moe is None:
            return 0
        return self.num_moe_layers() * self.moe.num_experts * 3 * self.d_model * self.moe.hidden_size

    def num_non_embedding_params(self) -> int:
        return self.num_params() - self.num_embedding_params()

    def num_matmul_params(self) -> int:
        """Weights that take part in a matmul per token: every block projection plus the output head;
        for MoE blocks the router, the token's top_k experts and the shared experts (active weights)."""
        blocks = sum(self.block_matmul_params(i, active=True) for i in range(self.n_layers))
        return blocks + self.vocab_size * self.d_model

    def attended_positions(self, seq_len: int) -> int:
        """Keys per query summed over layers: seq_len on full layers, min(window, seq_len) on
        sliding-window layers (their kernels skip the blocks outside the window)."""
        window = min(self.sliding_window or seq_len, seq_len)
        sliding = sum(self.is_sliding_layer(i) for i in range(self.n_layers))
        return (self.n_layers - sliding) * seq_len + sliding * window

    def num_flops_per_token(self, seq_len: int) -> int:
        """Training FLOPs per token = 6 x matmul params + 12 x heads x head_dim x attended positions.

        A matmul weight costs 2 FLOPs per token forward (multiply + add) and 4 backward (grads
        of input and weight): 6 per parameter. Attention scores (QK^T) and their use (AV) are two
        more matmuls of size head_dim x (keys attended) per head, again x6 for forward + backward
        = 12; a full layer attends seq_len keys, a sliding-window layer min(window, seq_len).
        Causal masking is not discounted (PaLM appendix B; nanochat's estimate_flops). An MoE
        block counts its active weights only (router + top_k experts + shared experts), so MFU of
        an MoE is on active FLOPs, as OLMo-core and torchtitan report it.
        """
        attention = 12 * self.q_dim * self.attended_positions(seq_len)
        return 6 * self.num_matmul_params() + attention
