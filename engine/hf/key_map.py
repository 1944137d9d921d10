"""Parameter names: engine <-> HuggingFace Llama / OLMo-2 / OLMo-3 / Qwen3 / Gemma-3.

The engine's names (engine/nn/transformer.py) are the same for every family; only the block
norms sit in different places, and HF names them by position:

    engine                    HF Llama, Qwen3 (pre-norm)       HF OLMo-2, OLMo-3 (reordered norm)
    blocks.i.attention_norm   layers.i.input_layernorm         layers.i.post_attention_layernorm
    blocks.i.mlp_norm         layers.i.post_attention_layernorm layers.i.post_feedforward_layernorm

so Llama's `post_attention_layernorm` is the engine's *mlp* norm (it normalizes the MLP's input,
right after attention) while OLMo-2's is the *attention* norm (applied to attention's output).
Gemma-3 has all four: input_layernorm / post_attention_layernorm around attention
(engine: attention_norm / attention_post_norm), pre_ / post_feedforward_layernorm around the MLP
(mlp_norm / mlp_post_norm). Its norm weights are stored as offsets from 1 on both sides.

OLMoE's MoE feed-forward: the router is `mlp.gate.weight` (engine: mlp.router.weight); each
expert j is its own gated MLP `mlp.experts.{j}.{gate,up,down}_proj.weight`, which the engine
stacks into `mlp.experts.{w1,w3,w2}` (E, ...). The name table uses one per-expert name per HF
tensor, `blocks.i.mlp.experts.w1.{j}`; stack_experts / split_experts turn those into the
engine's stacked tensors and back.

RoPE needs no permutation: the engine uses the same "rotate half" layout as HF's modeling files
(the first half of each head's dims pairs with the second half), which the logit tests in
tests/engine/test_hf_convert.py and test_hf_families.py check numerically.
"""

from __future__ import annotations

import re
from typing import Dict, Iterable, List, Tuple

from engine.config import ModelConfig

_BLOCK_COMMON = {
    "attention.w_q.weight": "self_attn.q_proj.weight",
    "attention.w_k.weight": "self_attn.k_proj.weight",
    "attention.w_v.weight": "self_attn.v_proj.weight",
    "attention.w_out.weight": "self_attn.o_proj.weight",
    "mlp.w1.weight": "mlp.gate_proj.weight",
    "mlp.w3.weight": "mlp.up_proj.weight",
    "mlp.w2.weight": "mlp.down_proj.weight",
}
_BLOCK_NORMS = {
    "llama": {
        "attention_norm.weight": "input_layernorm.weight",
        "mlp_norm.weight": "post_attention_layernorm.weight",
    },
    "olmo2": {
        "attention_norm.weight": "post_attention_layernorm.weight",
        "mlp_norm.weight": "post_feedforward_layernorm.weight",
    },
    "gemma3": {
        "attention_norm.weight": "input_layernorm.weight",
        "attention_post_norm.weight": "post_attention_layernorm.weight",
        "mlp_norm.weight": "pre_feedforward_layernorm.weight",
        "mlp_post_norm.weight": "post_feedforward_layernorm.weight",
    },
}
_BLOCK_NORMS["qwen3"] = _BLOCK_NORMS["llama"]
_BLOCK_NORMS["olmo3"] = _BLOCK_NORMS["olmo2"]
_QK_NORM = {
    "attention.q_norm.weight": "self_attn.q_norm.weight",
    "attention.k_norm.weight": "self_attn.k_norm.weight",
}
_EXPERT = {"w1": "gate_proj", "w3": "up_proj", "w2": "down_proj"}
# Buffers some older HF checkpoints saved; recomputed by both sides, never weights.
_IGNORED_HF = re.compile(r"(^|\.)rotary_emb\.inv_freq$")


def engine_to_hf_names(cfg: ModelConfig) -> Dict[str, str]:
    """Every engine parameter name -> its HF name (lm_head included even when tied)."""
    block = dict(_BLOCK_COMMON)
    block.update(_BLOCK_NORMS[cfg.family])
    if cfg.qk_norm:
        block.update(_QK_NORM)
    moe_block = {k: v for k, v in block.items() if not k.startswith("mlp.")}
    moe_block["mlp.router.weight"] = "mlp.gate.weight"
    if cfg.moe is not None:
        for ours, theirs in _EXPERT.items():
            for j in range(cfg.moe.num_experts):
                moe_block[f"mlp.experts.{ours}.{j}"] = f"mlp.experts.{j}.{theirs}.weight"
    names = {"embeddings.weight": "model.embed_tokens.weight", "norm.weight": "model.norm.weight",
             "lm_head.weight": "lm_head.weight"}
    for i in range(cfg.n_layers):
        for ours, theirs in (moe_block if cfg.is_moe_layer(i) else block).items():
            names[f"blocks.{i}.{ours}"] = f"model.layers.{i}.{theirs}"
    return names


def _expert_names(cfg: ModelConfig):
    """(stacked engine name, [per-expert names]) of every MoE block's expert weights."""
    for i in range(cfg.n_layers):
        if cfg.is_moe_layer(i):
            for ours in _EXPERT:
                stacked = f"blocks.{i}.mlp.experts.{ours}"
                yield stacked, [f"{stacked}.{j}" for j in range(cfg.moe.num_experts)]


def stack_experts(cfg: ModelConfig, weights: Dict) -> Dict:
    """Per-expert tensors (engine_to_hf_names' names) -> the engine's stacked (E, ...) tensors."""
    import torch

    for stacked, per_expert in _expert_names(cfg):
        weights[stacked] = torch.stack([weights.pop(name) for name in per_expert])
    return weights


def split_experts(cfg: ModelConfig, weights: Dict) -> Dict:
    """The engine's stacked expert tensors -> one tensor per expert (the inverse of stack_experts)."""
    for stacked, per_expert in _expert_names(cfg):
        whole = weights.pop(stacked)
        weights.update(zip(per_expert, whole.unbind(0)))
    return weights


def expected_shapes(cfg: ModelConfig, per_expert: bool = False) -> Dict[str, Tuple[int, ...]]:
    """Engine parameter name -> shape, from the config alone (matches engine.nn.Transformer;
    tests compare the two). per_expert: MoE expert weights by engine_to_hf_names' per-expert names."""
    d, q, kv, hidden, vocab = cfg.d_model, cfg.q_dim, cfg.kv_dim, cfg.mlp_hidden, cfg.vocab_size
    block = {
        "attention.w_q.weight": (q, d), "attention.w_k.weight": (kv, d), "attention.w_v.weight": (kv, d),
        "attention.w_out.weight": (d, q), "mlp.w1.weight": (hidden, d), "mlp.w3.weight": (hidden, d),
        "mlp.w2.weight": (d, hidden), "attention_norm.weight": (d,), "mlp_norm.weight": (d,),
    }
    if cfg.gemma_blocks:
        block.update({"attention_post_norm.weight": (d,), "mlp_post_norm.weight": (d,)})
    if cfg.qk_norm:
        hd = cfg.head_size
        block.update({"attention.q_norm.weight": (hd,) if cfg.per_head_qk_norm else (q,),
                      "attention.k_norm.weight": (hd,) if cfg.per_head_qk_norm else (kv,)})
    moe_block = {k: v for k, v in block.items() if not k.startswith("mlp.")}
    if cfg.moe is not None:
        E, h = cfg.moe.num_experts, cfg.moe.hidden_size
        moe_block.update({"mlp.router.weight": (E, d), "mlp.experts.w1": (E, h, d), "mlp.experts.w3": (E, h, d),
                          "mlp.experts.w2": (E, d, h)})
        if cfg.moe.num_shared_experts:
            s = cfg.moe.num_shared_experts * h
            moe_block.update({"mlp.shared.w1.weight": (s, d), "mlp.shared.w3.weight": (s, d),
                              "mlp.shared.w2.weight": (d, s)})
    shapes = {"embeddings.weight": (vocab, d), "norm.weight": (d,), "lm_head.weight": (vocab, d)}
    for i in range(cfg.n_layers):
        for name, shape in (moe_block if cfg.is_moe_layer(i) else block).items():
            shapes[f"blocks.{i}.{name}"] = shape
    if per_expert:
        for stacked, names in _expert_names(cfg):
            whole = shapes.pop(stacked)
            shapes.update({name: whole[1:] for name in names})
    return shapes


def is_ignored_hf_name(name: str) -> bool:
    return bool(_IGNORED_HF.search(name))


def describe_names(names: Iterable[str], limit: int = 3) -> str:
    """'a, b, c and 5 more' for one-line error messages."""
    names: List[str] = sorted(names)
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")
