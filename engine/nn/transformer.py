"""The decoder-only transformer: Llama / Qwen3 (pre-norm), OLMo-2 / OLMo-3 (reordered norm)
and Gemma-3 (pre + post norm) blocks.

Parameter names are a contract (HF conversion and optimizer group globs rely on them):
  embeddings.weight
  blocks.{i}.attention.{w_q,w_k,w_v,w_out}.weight   blocks.{i}.attention.{q_norm,k_norm}.weight (qk_norm)
  blocks.{i}.attention_norm.weight  blocks.{i}.mlp.{w1,w3,w2}.weight  blocks.{i}.mlp_norm.weight
  blocks.{i}.{attention_post_norm,mlp_post_norm}.weight (gemma3: the norms after each sub-layer)
  blocks.{i}.mlp.router.weight  blocks.{i}.mlp.experts.{w1,w3,w2}  blocks.{i}.mlp.shared.{w1,w3,w2}.weight
      (MoE blocks, model.moe: the MLP's place; see moe.py)
  norm.weight  lm_head.weight (the embedding Parameter itself when tie_embeddings)

Init (deterministic from the seed, identical under any parallelism): every weight matrix and the
embedding ~ normal(0, init_std) truncated at +-3 std; the two output projections of each block
(attention.w_out, mlp.w2 and the MoE's expert / shared down projections) use init_std / sqrt(2 * n_layers) (GPT-2's residual scaling); norm
weights = 1 (Gemma's (1 + w) norms: 0, the same scale). Each parameter draws from its own
generator seeded by (seed, parameter name), so the values do not depend on parameter order,
device count or sharding.
"""

from __future__ import annotations

import math
import zlib
from typing import Callable, Dict, Optional, Tuple

import torch
from torch import nn

from engine.config import ModelConfig

from .document_mask import document_mask
from .fused_loss import chunk_objective, linear_cross_entropy
from .loss import cross_entropy_sums
from .moe import MoE
from .rope import rope_tables
from .sliding_window import Mask, window_mask


class Block(nn.Module):
    """One transformer block. llama / qwen3: x + attn(norm(x)); olmo2 / olmo3: x + norm(attn(x));
    gemma3: x + post_norm(attn(norm(x))). The MLP half has the same shape as the attention half."""

    def __init__(self, cfg: ModelConfig, index: int = 0):
        super().__init__()
        self.layout = {"olmo2": "post", "olmo3": "post", "gemma3": "sandwich"}.get(cfg.family, "pre")
        self.attention = build_part(cfg.attention, cfg, index)
        self.attention_norm = build_part(cfg.norm, cfg, cfg.d_model)
        # An MoE block (model.moe) routes to experts instead of the MLP model.mlp picks.
        self.mlp = MoE(cfg.d_model, cfg.moe) if cfg.is_moe_layer(index) else build_part(cfg.mlp, cfg, index)
        self.mlp_norm = build_part(cfg.norm, cfg, cfg.d_model)
        if self.layout == "sandwich":
            self.attention_post_norm = build_part(cfg.norm, cfg, cfg.d_model)
            self.mlp_post_norm = build_part(cfg.norm, cfg, cfg.d_model)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, mask: Mask = None) -> torch.Tensor:
        # x: (B, T, d) -> (B, T, d)
        if self.layout == "post":
            h = x + self.attention_norm(self.attention(x, cos, sin, mask))
            return h + self.mlp_norm(self.mlp(h))
        if self.layout == "sandwich":
            h = x + self.attention_post_norm(self.attention(self.attention_norm(x), cos, sin, mask))
            return h + self.mlp_post_norm(self.mlp(self.mlp_norm(h)))
        h = x + self.attention(self.attention_norm(x), cos, sin, mask)
        return h + self.mlp(self.mlp_norm(h))


def build_part(section, cfg: ModelConfig, arg: int) -> nn.Module:
    """The registered component a model section (model.mlp, .attention, .norm, .block) picks,
    built from its own config, the model config and the block index (the width, for a norm)."""
    return section.component().builder()(section.component_config(), cfg, arg)


def build_block(block_cfg, cfg: ModelConfig, index: int) -> Block:
    """The built-in block (registered as "standard" in engine/config/model.py)."""
    return Block(cfg, index)


class Transformer(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.config = cfg
        self.embeddings = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.blocks = nn.ModuleDict({str(i): build_part(cfg.block, cfg, i) for i in range(cfg.n_layers)})
        self.norm = build_part(cfg.norm, cfg, cfg.d_model)
        self.lm_head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        if cfg.tie_embeddings:
            self.lm_head.weight = self.embeddings.weight
        # RoPE tables are a cache, not state: built on first use on the right device, one per
        # layer type: full-attention layers use rope_theta and rope_scaling, sliding-window layers
        # rope_local_theta (or rope_theta) and plain RoPE, as the OLMo-3 and Gemma-3 releases do.
        self._rope: Dict[bool, Tuple[torch.Tensor, torch.Tensor]] = {}
        # Training loss: chunked head + CE that never holds all logits (fused_loss.py); off under
        # tensor parallelism (the head weight is a DTensor there). compile.py swaps in compiled
        # versions of both loss functions.
        # A final logit soft-cap changes the logits' gradient: it takes the plain path.
        self.fused_loss = cfg.final_logit_softcap is None
        self.chunk_fn: Callable = chunk_objective
        self.loss_fn: Callable = cross_entropy_sums
        # Context parallelism (engine/distributed/context_parallel.py): input_ids then hold this
        # rank's T/cp tokens; RoPE rows and the window mask follow the global positions.
        self.cp = None

    # ---- forward ----------------------------------------------------------------------------
    def rope(self, seq_len: int, device: torch.device, sliding: bool = False) -> Tuple[torch.Tensor, torch.Tensor]:
        """(cos, sin) of the full-attention layers, or of the sliding-window ones."""
        cfg = self.config
        cached = self._rope.get(sliding)
        if cached is None or cached[0].shape[0] < seq_len or cached[0].device != device:
            length = max(seq_len, cached[0].shape[0] if cached is not None else 0)
            theta = (cfg.rope_local_theta or cfg.rope_theta) if sliding else cfg.rope_theta
            self._rope[sliding] = rope_tables(cfg.head_size, length, theta, device,
                                              None if sliding else cfg.rope_scaling)
        return self._rope[sliding]

    def forward(
        self,
        input_ids: torch.Tensor,
        labels: Optional[torch.Tensor] = None,
        ignore_index: int = -100,
        z_loss_multiplier: Optional[float] = None,
        doc_ids: Optional[torch.Tensor] = None,
    ):
        """input_ids: (B, T) long. Without labels: logits (B, T, V). doc_ids (B, T) long: attend
        only within each document of a packed row (engine/nn/document_mask.py).

        A pipeline stage (engine/train_module/pipeline.py) may lack the embeddings (it then takes
        the previous stage's hidden states (B, T, d) as input_ids) or the norm and head (it then
        returns its hidden states).

        With labels (B, T): (objective_sum, ce_sum, z_sum or None), fp32 sums over non-ignored
        labels; objective_sum = ce_sum + z_loss_multiplier * z_sum is the one to differentiate
        (ce_sum and z_sum are detached). The loss goes through forward so FSDP's root hooks run.
        """
        cfg, T = self.config, input_ids.shape[1]
        if self.embeddings is None:
            h = input_ids  # a later pipeline stage: the previous stage's output
        else:
            h = self.embeddings(input_ids)  # (B, T, d)
            if cfg.gemma_blocks:  # Gemma scales embeddings by sqrt(d_model), rounded to their dtype as HF does
                h = h * torch.tensor(cfg.d_model ** 0.5, dtype=h.dtype)
        if self.cp is not None:
            T *= self.cp.degree  # the whole sequence: what attention sees
        full = self.rope(T, h.device)
        local = self.rope(T, h.device, sliding=True) if cfg.sliding_window else full
        if self.cp is not None:  # each rank's rows: its tokens' global positions
            rows = self.cp.positions(T, h.device)
            full, local = (full[0][rows], full[1][rows]), (local[0][rows], local[1][rows])
        mask = window_mask(T, cfg.sliding_window, h.device)
        full_mask = None
        if doc_ids is not None:  # packed documents: causal within each (no CP / PP: config rule)
            full_mask = document_mask(doc_ids, None)
            mask = document_mask(doc_ids, cfg.sliding_window) if cfg.sliding_window else full_mask
        for block in self.blocks.values():
            sliding = getattr(_unwrap(block).attention, "window", None) is not None
            cos, sin = local if sliding else full
            h = block(h, cos, sin, mask if sliding else full_mask)
        if self.lm_head is None:
            return h  # an earlier pipeline stage
        h = self.norm(h)
        if labels is None:
            return self.capped(self.lm_head(h))  # (B, T, V)
        if self.fused_loss and torch.is_grad_enabled():
            objective, ce_sum, z_sum = linear_cross_entropy(
                h.flatten(0, 1), self.lm_head.weight, labels.flatten(), ignore_index, z_loss_multiplier,
                self.chunk_fn)
        else:
            ce_sum, z_sum = self.loss_fn(self.capped(self.lm_head(h)).flatten(0, 1), labels.flatten(),
                                         ignore_index, z_loss_multiplier is not None)
            objective = ce_sum if z_sum is None else ce_sum + z_loss_multiplier * z_sum
            ce_sum, z_sum = ce_sum.detach(), None if z_sum is None else z_sum.detach()
        aux = self.router_aux_loss()
        if aux is not None and torch.is_grad_enabled():
            objective = objective + aux * (labels != ignore_index).sum()
        return objective, ce_sum, z_sum

    def moe_layers(self) -> Dict[int, MoE]:
        """Block index -> its MoE feed-forward, for the MoE blocks."""
        out = {}
        for i, block in self.blocks.items():
            mlp = _unwrap(block).mlp
            if isinstance(mlp, MoE):
                out[int(i)] = mlp
        return out

    def router_aux_loss(self) -> Optional[torch.Tensor]:
        """Sum over MoE blocks of their last forward's weighted auxiliary losses (None if dense)."""
        terms = [aux for moe in self.moe_layers().values() if (aux := moe.aux_loss()) is not None]
        return sum(terms) if terms else None

    def capped(self, logits: torch.Tensor) -> torch.Tensor:
        """cap x tanh(logits / cap) with model.final_logit_softcap, else the logits unchanged."""
        cap = self.config.final_logit_softcap
        return logits if cap is None else cap * torch.tanh(logits / cap)

    # ---- init -------------------------------------------------------------------------------
    def init_std_for(self, name: str) -> Optional[float]:
        """The init std of a parameter by name; None for norm weights (set to 1)."""
        if name.endswith("norm.weight"):
            return None
        if name.endswith(("attention.w_out.weight", "mlp.w2.weight", "mlp.experts.w2", "mlp.shared.w2.weight")):
            return self.config.init_std / math.sqrt(2 * self.config.n_layers)
        return self.config.init_std

    @torch.no_grad()
    def init_weights(self, seed: int) -> None:
        """Fill every parameter deterministically from `seed` (see the module docstring)."""
        self._rope = {}
        norm_value = 0.0 if self.config.gemma_blocks else 1.0  # Gemma norms scale by (1 + w)
        for name, param in _named_params(self):
            std = self.init_std_for(name)
            full = torch.empty(param.shape, dtype=torch.float32, device=_local(param).device)
            if std is None:
                full.fill_(norm_value)
            else:
                gen = torch.Generator(device=full.device)
                gen.manual_seed((seed * 1_000_003 + zlib.crc32(name.encode())) % (1 << 63))
                nn.init.trunc_normal_(full, 0.0, std, -3 * std, 3 * std, generator=gen)
            _copy_full_into(param, full)

    # ---- counts (checked against ModelConfig's arithmetic for every preset) ------------------
    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())  # parameters() skips the tied duplicate

    def num_non_embedding_params(self) -> int:
        return self.num_params() - self.embeddings.weight.numel()

    def num_matmul_params(self) -> int:
        # Every Linear weight multiplies each token once, the tied output head included; an MoE
        # block's router does too, but only top_k of its experts (active weights).
        total = sum(m.weight.numel() for m in self.modules() if isinstance(m, nn.Linear))
        for moe in self.moe_layers().values():
            experts = sum(_global_numel(p) for p in moe.experts.parameters())
            total += _global_numel(moe.router.weight) + experts * moe.cfg.top_k // moe.cfg.num_experts
        return total

    def num_flops_per_token(self, seq_len: int) -> int:
        """6 x matmul params + 12 x (heads x head_dim) x keys attended, summed over layers (see
        ModelConfig): seq_len keys on full layers, min(window, seq_len) on sliding ones."""
        attended = 0
        for block in self.blocks.values():
            attention = _unwrap(block).attention
            q_width = attention.w_q.weight.shape[0]  # heads x head_dim (global)
            attended += q_width * min(attention.window or seq_len, seq_len)
        return 6 * self.num_matmul_params() + 12 * attended


def _unwrap(block: nn.Module) -> nn.Module:
    """The Block inside activation-checkpointing / compile wrappers."""
    for attr in ("_checkpoint_wrapped_module", "_orig_mod"):
        block = getattr(block, attr, block)
    return block


def _global_numel(param: torch.Tensor) -> int:
    return param.shape.numel()  # a DTensor's shape is the global one


def _named_params(module: nn.Module):
    """named_parameters() with the wrappers' prefixes removed (names stay the contract's)."""
    for name, param in module.named_parameters():
        yield clean_param_name(name), param


def clean_param_name(name: str) -> str:
    for prefix in ("_orig_mod.", "_checkpoint_wrapped_module.", "module."):
        name = name.replace(prefix, "")
    return name


def _local(param: torch.Tensor) -> torch.Tensor:
    return param.to_local() if hasattr(param, "to_local") else param


def _copy_full_into(param: torch.Tensor, full: torch.Tensor) -> None:
    """Copy a full (unsharded) tensor into a parameter that may be a sharded DTensor."""
    if not hasattr(param, "device_mesh"):
        param.copy_(full)
        return
    from torch.distributed.tensor import distribute_tensor

    try:  # every rank holds the same full tensor: slice locally, no communication
        shard = distribute_tensor(full, param.device_mesh, param.placements, src_data_rank=None)
    except TypeError:  # older torch without src_data_rank: scatter from rank 0 (same values)
        shard = distribute_tensor(full, param.device_mesh, param.placements)
    param.to_local().copy_(shard.to_local())


def build_model(cfg: ModelConfig, init_device: str | torch.device = "meta") -> Transformer:
    """The model with parameters on `init_device` (meta: no memory until materialized)."""
    with torch.device(init_device):
        return Transformer(cfg)


def materialize(model: Transformer, device: torch.device, seed: int) -> Transformer:
    """Allocate a meta-built (possibly parallelized) model on `device` and initialise it."""
    model.to_empty(device=device)
    if model.config.tie_embeddings and model.lm_head.weight is not model.embeddings.weight:
        model.lm_head.weight = model.embeddings.weight
    model.init_weights(seed)
    return model


def param_groups_by_name(model: nn.Module) -> Dict[str, torch.Tensor]:
    return dict(_named_params(model))
