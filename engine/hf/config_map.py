"""ModelConfig <-> HuggingFace `config.json` (Llama, OLMo-2, OLMo-3, Qwen3, Gemma-3 text, OLMoE), torch-free.

OLMoE (`OlmoeForCausalLM`) is the engine's llama block layout with whole-projection QK-norm and
model.moe: softmax router, top-k routed experts, no shared experts, every layer MoE.

Only what the engine can reproduce exactly is accepted: gated MLPs with SiLU (GELU-tanh for
Gemma-3), no biases, RoPE plain or scaled (linear, yarn, llama3) on the full-attention layers
and plain on sliding-window ones, head_dim = hidden_size / num_attention_heads
except for Qwen3 and Gemma-3 (which set it freely), sliding-window layers only in the periodic
pattern HF's own configs default to (every N-th layer full). Anything else is refused with one
line naming the config.json key, before a byte is written, rather than converted into a model
that silently computes something different.

Both spellings of RoPE's base and scaling are read (transformers < 5: top-level `rope_theta`,
`rope_scaling` and Gemma's `rope_local_base_freq`; transformers >= 5: `rope_parameters`, per layer
type for OLMo-3 / Gemma-3), and both are written, so the exported directory loads in either
version. The scaling keys are model.rope_scaling's field names; a legacy `rope_scaling` lands on
the full-attention layers of OLMo-3 / Gemma-3 and on every layer of the other families, as
transformers reads it.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

from pydantic import ValidationError

from engine.config import ModelConfig, RopeScalingConfig
from engine.config.rope_scaling import TYPE_FIELDS
from engine.errors import UserError

# model_type -> (engine family, HF architecture class name). Every family but llama always has QK-norm.
ARCHITECTURES = {
    "llama": ("llama", "LlamaForCausalLM"),
    "olmo2": ("olmo2", "Olmo2ForCausalLM"),
    "olmo3": ("olmo3", "Olmo3ForCausalLM"),
    "qwen3": ("qwen3", "Qwen3ForCausalLM"),
    "gemma3_text": ("gemma3", "Gemma3ForCausalLM"),
    "olmoe": ("llama", "OlmoeForCausalLM"),  # + model.moe
}
MODEL_TYPE = {family: model_type for model_type, (family, _) in ARCHITECTURES.items() if model_type != "olmoe"}
SUPPORTED = ", ".join(ARCHITECTURES)
# What each HF config class assumes when config.json leaves a key out.
_DEFAULT_EPS = {"olmoe": 1e-5, "llama": 1e-6, "olmo2": 1e-5, "olmo3": 1e-5, "qwen3": 1e-6, "gemma3": 1e-6}
_DEFAULT_TIED = {"gemma3": True}
_DEFAULT_WINDOW_INTERVAL = {"olmo3": 4, "gemma3": 6}
_FREE_HEAD_DIM = ("qwen3", "gemma3")
_ACTIVATION = {"gemma3": ("hidden_activation", "gelu_pytorch_tanh")}
# model_types whose RoPE is configured per layer type (full_attention / sliding_attention).
_PER_LAYER_ROPE = ("olmo3", "gemma3_text")
_SCALING_TYPES = ("linear", "yarn", "llama3")

# config.json needs a context length; the engine has none of its own (RoPE tables grow on use).
_DEFAULT_MAX_POSITIONS = 4096


def read_hf_config(model_dir: Path) -> Dict[str, Any]:
    path = Path(model_dir) / "config.json"
    if not path.is_file():
        raise UserError("SRC", f"{model_dir} has no config.json: not a HuggingFace model directory")
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise UserError("config.json", f"cannot read {path}: {exc}") from None
    if not isinstance(data, dict):
        raise UserError("config.json", f"{path} is not a JSON object")
    return data


def _rope(hf: Dict[str, Any], layer_type: str = "full_attention") -> Tuple[float, Dict[str, Any], str]:
    """(theta, RoPE parameters, the config.json key they came from) of one layer type, from either
    transformers generation, combined the way transformers combines them."""
    per_layer = hf.get("model_type") in _PER_LAYER_ROPE
    params = hf.get("rope_parameters")
    where = "rope_parameters"
    if isinstance(params, dict) and layer_type in params:  # per-layer-type form
        params, where = params[layer_type], f"rope_parameters.{layer_type}"
    elif isinstance(params, dict) and "full_attention" in params:
        # Only full-attention parameters given: a per-layer-type family's sliding layers are plain.
        params, where = params["full_attention"], "rope_parameters.full_attention"
        if per_layer and layer_type != "full_attention":
            params = {"rope_theta": params.get("rope_theta")} if "rope_theta" in params else {}
    theta = hf.get("rope_theta")
    if layer_type == "sliding_attention" and hf.get("rope_local_base_freq") is not None:  # Gemma-3, < 5
        theta = hf["rope_local_base_freq"]
    spec: Dict[str, Any] = {}
    if isinstance(params, dict):
        theta = params.get("rope_theta", theta)
        spec = {key: value for key, value in params.items() if key != "rope_theta"}
    legacy = hf.get("rope_scaling")
    # transformers puts the legacy `rope_scaling` on the full-attention layers of OLMo-3 / Gemma-3
    # (their sliding layers keep plain RoPE) and on every layer of the other families.
    if isinstance(legacy, dict) and (layer_type == "full_attention" or not per_layer):
        spec, where = {**spec, **legacy}, "rope_scaling"
    return float(theta if theta is not None else 10_000.0), spec, where


def _rope_type(spec: Dict[str, Any]) -> str:
    return spec.get("rope_type") or spec.get("type") or "default"


def _yarn_mscale(factor: float, mscale: float) -> float:
    return 1.0 if factor <= 1 else 0.1 * mscale * math.log(factor) + 1.0


def _scaling_from_hf(hf: Dict[str, Any], spec: Dict[str, Any], where: str) -> RopeScalingConfig:
    """model.rope_scaling for one layer type's RoPE parameters (the same names, bar rope_type)."""
    kind = _rope_type(spec)
    key = f"{where}.partial_rotary_factor" if "partial_rotary_factor" in spec else "partial_rotary_factor"
    partial = spec.get("partial_rotary_factor", hf.get("partial_rotary_factor"))
    if partial is not None and partial != 1:
        raise UserError(f"config.json: {key}", f"{partial!r} is not supported (the engine rotates every "
                        "dimension of a head)")
    if kind == "default":
        return RopeScalingConfig()
    if kind not in _SCALING_TYPES:
        raise UserError(f"config.json: {where}.rope_type", f"RoPE scaling {kind!r} is not supported: the engine "
                        f"implements {', '.join(('default', *_SCALING_TYPES))}")
    fields = {name: spec.get(name) for name in TYPE_FIELDS[kind][0] + TYPE_FIELDS[kind][1]}
    if kind in ("yarn", "llama3") and fields["original_max_position_embeddings"] is None:
        # transformers' default: Phi-3's top-level key, else the context length itself
        fields["original_max_position_embeddings"] = (hf.get("original_max_position_embeddings")
                                                      or hf.get("max_position_embeddings"))
    if kind == "yarn":
        if fields["factor"] is None and hf.get("max_position_embeddings"):  # transformers infers it
            fields["factor"] = hf["max_position_embeddings"] / fields["original_max_position_embeddings"]
        for beta in ("beta_fast", "beta_slow"):
            fields[beta] = fields[beta] or None  # transformers reads 0 as unset
        mscale, mscale_all_dim = spec.get("mscale"), spec.get("mscale_all_dim")
        if fields["attention_factor"] is None and mscale and mscale_all_dim and fields["factor"]:
            # DeepSeek's spelling of the attention factor: the ratio of two YaRN mscales
            fields["attention_factor"] = (_yarn_mscale(fields["factor"], mscale)
                                          / _yarn_mscale(fields["factor"], mscale_all_dim))
        if fields["truncate"] is False and hf.get("model_type") in _PER_LAYER_ROPE:
            # transformers 5 reads truncate only from a single (not per-layer-type) RoPE config
            raise UserError(f"config.json: {where}.truncate", f"false for {hf['model_type']}, but transformers ignores "
                            "truncate in a per-layer-type RoPE config (it truncates): ambiguous, so not converted")
    try:
        return RopeScalingConfig(type=kind, **fields)
    except ValidationError as exc:
        from engine.config.experiment import issues_from_validation_error

        issue = issues_from_validation_error(exc)[0]
        raise UserError(f"config.json: {where}" + (f".{issue.paths[0]}" if issue.paths else ""),
                        issue.message) from None


def _int(hf: Dict[str, Any], key: str) -> int:
    value = hf.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise UserError(f"config.json: {key}", f"must be a positive integer, got {value!r}")
    return value


def _window(hf: Dict[str, Any], family: str, n_layers: int) -> tuple[Optional[int], int]:
    """(sliding_window, full_attention_interval) from sliding_window + layer_types."""
    if family not in _DEFAULT_WINDOW_INTERVAL:
        if family == "qwen3" and hf.get("use_sliding_window"):
            raise UserError("config.json: use_sliding_window", "Qwen3's sliding window on the layers past "
                            "max_window_layers is not supported (the released Qwen3 models do not use it)")
        return None, 4
    interval = int(hf.get("sliding_window_pattern") or _DEFAULT_WINDOW_INTERVAL[family])
    types = hf.get("layer_types")
    window = hf.get("sliding_window")
    if types is None:
        types = ["sliding_attention" if (i + 1) % interval else "full_attention" for i in range(n_layers)]
    if not isinstance(types, list) or len(types) != n_layers:
        raise UserError("config.json: layer_types", f"expected {n_layers} entries, got {types!r}")
    if "sliding_attention" not in types or window is None:
        return None, interval
    if not isinstance(window, int) or window <= 0:
        raise UserError("config.json: sliding_window", f"must be a positive integer, got {window!r}")
    full = [i + 1 for i, kind in enumerate(types) if kind == "full_attention"]
    interval = full[0] if full else n_layers + 1
    expected = ["sliding_attention" if (i + 1) % interval else "full_attention" for i in range(n_layers)]
    if types != expected:
        raise UserError("config.json: layer_types", "only a periodic pattern (every N-th layer full "
                        "attention, the rest sliding) is supported")
    return window, interval


def model_config_from_hf(hf: Dict[str, Any]) -> ModelConfig:
    """The engine's ModelConfig for an HF config.json of a supported family; UserError if not."""
    model_type = hf.get("model_type")
    if model_type == "gemma3":
        raise UserError("config.json: model_type", "'gemma3' is the multimodal Gemma-3; convert a text-only "
                        "checkpoint (model_type 'gemma3_text', e.g. gemma-3-1b)")
    if model_type not in ARCHITECTURES:
        raise UserError("config.json: model_type",
                        f"unknown architecture {model_type!r}: supported are {SUPPORTED}")
    family = ARCHITECTURES[model_type][0]
    moe = _moe_from_hf(hf) if model_type == "olmoe" else None
    d_model = _int(hf, "hidden_size")
    n_heads = _int(hf, "num_attention_heads")
    n_layers = _int(hf, "num_hidden_layers")
    n_kv_heads = hf.get("num_key_value_heads") or n_heads
    head_dim = hf.get("head_dim")
    if family in _FREE_HEAD_DIM:
        head_dim = _int(hf, "head_dim") if head_dim is not None else None
        if head_dim is None and d_model % n_heads:
            raise UserError("config.json: head_dim", f"missing, and hidden_size {d_model} is not divisible by "
                            f"{n_heads} heads")
    else:
        if d_model % n_heads:
            raise UserError("config.json: num_attention_heads",
                            f"hidden_size {d_model} is not divisible by {n_heads} heads")
        if head_dim is not None and head_dim != d_model // n_heads:
            raise UserError("config.json: head_dim", f"{head_dim} differs from hidden_size / num_attention_heads "
                            f"= {d_model // n_heads}; the engine derives head_dim from d_model for {family}")
        head_dim = None
    act_key, act_value = _ACTIVATION.get(family, ("hidden_act", "silu"))
    act = hf.get(act_key, act_value)
    if act != act_value:
        raise UserError(f"config.json: {act_key}", f"{act!r} is not supported (the engine's {family} MLP uses "
                        f"{act_value})")
    for key in ("attention_bias", "mlp_bias", "attn_logit_softcapping", "use_bidirectional_attention"):
        if hf.get(key):
            raise UserError(f"config.json: {key}", "is not supported (the engine has no biases, no attention "
                            "logit soft-capping and causal attention only)")
    theta, spec, where = _rope(hf)
    scaling = _scaling_from_hf(hf, spec, where)
    window, interval = _window(hf, family, n_layers)
    local_theta, local_spec, local_where = _rope(hf, "sliding_attention")
    if window is not None and _rope_type(local_spec) != "default":
        raise UserError(f"config.json: {local_where}.rope_type", f"RoPE scaling {_rope_type(local_spec)!r} on the "
                        "sliding-window layers is not supported (the engine scales the full-attention layers "
                        "only, as the released OLMo-3 and Gemma-3 do)")
    gemma = family == "gemma3"
    try:
        return ModelConfig(
            family=family,
            d_model=d_model,
            n_layers=n_layers,
            n_heads=n_heads,
            n_kv_heads=None if n_kv_heads == n_heads else n_kv_heads,
            head_dim=head_dim,
            mlp_hidden_size=_int(hf, "intermediate_size"),
            vocab_size=_int(hf, "vocab_size"),
            rope_theta=theta,
            rope_local_theta=local_theta if window is not None and local_theta != theta else None,
            sliding_window=window,
            full_attention_interval=interval,
            query_pre_attn_scalar=float(hf.get("query_pre_attn_scalar") or 256) if gemma else None,
            final_logit_softcap=hf.get("final_logit_softcapping") if gemma else None,
            norm_eps=float(hf.get("rms_norm_eps", _DEFAULT_EPS["olmoe" if moe else family])),
            qk_norm=family != "llama" or moe is not None,
            tie_embeddings=bool(hf.get("tie_word_embeddings", _DEFAULT_TIED.get(family, False))),
            init_std=float(hf.get("initializer_range", 0.02)),
            rope_scaling=scaling,
            moe=moe,
        )
    except ValueError as exc:  # pydantic: shapes the engine cannot build
        first = str(exc).splitlines()
        raise UserError("config.json", first[-1] if first else str(exc)) from None


def _moe_from_hf(hf: Dict[str, Any]) -> Dict[str, Any]:
    """model.moe of an OLMoE config.json."""
    if hf.get("clip_qkv") is not None:
        raise UserError("config.json: clip_qkv", f"{hf['clip_qkv']!r} is not supported (the engine does not clamp "
                        "q, k and v); the released OLMoE models have none")
    hidden = _int(hf, "intermediate_size")
    fields = {"num_experts": hf.get("num_experts", 64), "top_k": hf.get("num_experts_per_tok", 8),
              "hidden_size": hidden, "gating": "softmax", "normalize_top_k": bool(hf.get("norm_topk_prob", False)),
              "aux_loss_weight": hf.get("router_aux_loss_coef", 0.01), "z_loss_weight": 0.001,
              # torch._grouped_mm wants 16-byte rows; odd widths take the reference loop
              "implementation": "grouped" if hidden % 8 == 0 and _int(hf, "hidden_size") % 8 == 0 else "loop"}
    return fields


def _check_hf_moe(cfg: ModelConfig) -> None:
    """UserError unless HF's OLMoE computes exactly what this MoE model does."""
    moe = cfg.moe
    rules = [
        (cfg.family == "llama", "model.family", f"HF's OLMoE has llama (pre-norm) blocks, not {cfg.family!r}"),
        (cfg.qk_norm, "model.qk_norm", "HF's OLMoE always applies QK-norm"),
        (moe.gating == "softmax", "model.moe.gating", "HF's OLMoE router is a softmax"),
        (moe.num_shared_experts == 0, "model.moe.num_shared_experts", "HF's OLMoE has no shared experts"),
        (not moe.dense_layers, "model.moe.dense_layers", "HF's OLMoE has an MoE feed-forward in every layer"),
        (cfg.head_dim is None or cfg.head_dim == cfg.d_model // cfg.n_heads, "model.head_dim",
         "HF's OLMoE derives head_dim from hidden_size / heads"),
        (not cfg.rope_scaling.enabled, "model.rope_scaling", "HF's OLMoE applies no RoPE scaling here"),
    ]
    for ok, field, message in rules:
        if not ok:
            raise UserError(field, f"{message}; this model has no HuggingFace equivalent")


def hf_config_from_model(cfg: ModelConfig, *, dtype: str = "float32",
                         max_position_embeddings: Optional[int] = None,
                         token_ids: Optional[Dict[str, Optional[int]]] = None) -> Dict[str, Any]:
    """config.json content for `cfg` (a dict; transformers reads it with AutoConfig)."""
    for part in ("mlp", "attention", "norm", "block"):
        component = getattr(cfg, part).component()
        if component.origin is not None:  # an extension's part: HF's model classes have no such layer
            raise UserError(f"model.{part}.kind", f"{part} {component.name!r} comes from extension "
                            f"{component.origin}; HuggingFace's {cfg.family} has only the built-in one")
    if cfg.moe is not None:
        _check_hf_moe(cfg)
        return _olmoe_config(cfg, dtype, max_position_embeddings, token_ids or {})
    if cfg.family != "llama" and not cfg.qk_norm:
        raise UserError("model.qk_norm", f"HF's {cfg.family} always applies QK-norm; this model has "
                        "qk_norm = false and has no HuggingFace equivalent")
    if cfg.family == "llama" and cfg.qk_norm:
        raise UserError("model.qk_norm", "HF's Llama has no QK-norm; a llama model with qk_norm = true "
                        "has no HuggingFace equivalent")
    if cfg.head_dim is not None and cfg.family not in _FREE_HEAD_DIM and cfg.head_dim != cfg.d_model // cfg.n_heads:
        raise UserError("model.head_dim", f"HF's {cfg.family} derives head_dim from hidden_size / heads; "
                        f"head_dim = {cfg.head_dim} has no HuggingFace equivalent")
    model_type = MODEL_TYPE[cfg.family]
    scaling = _scaling_to_hf(cfg)
    if cfg.rope_scaling.scaled_context:  # the context the scaling was made for (YaRN checks the ratio)
        max_position_embeddings = max(max_position_embeddings or 0, cfg.rope_scaling.scaled_context)
    full_rope = {"rope_theta": cfg.rope_theta, "rope_type": "default", **scaling}
    ids = token_ids or {}
    out: Dict[str, Any] = {
        "architectures": [ARCHITECTURES[model_type][1]],
        "model_type": model_type,
        "hidden_size": cfg.d_model,
        "intermediate_size": cfg.mlp_hidden,
        "num_hidden_layers": cfg.n_layers,
        "num_attention_heads": cfg.n_heads,
        "num_key_value_heads": cfg.kv_heads,
        "head_dim": cfg.head_size,
        "vocab_size": cfg.vocab_size,
        "hidden_act": "silu",
        "max_position_embeddings": max_position_embeddings or _DEFAULT_MAX_POSITIONS,
        "rms_norm_eps": cfg.norm_eps,
        "rope_theta": cfg.rope_theta,  # transformers < 5
        "rope_scaling": scaling or None,
        "rope_parameters": full_rope,  # >= 5
        "attention_bias": False,
        "attention_dropout": 0.0,
        "tie_word_embeddings": cfg.tie_embeddings,
        "initializer_range": cfg.init_std,
        "use_cache": True,
        "torch_dtype": dtype,  # transformers < 5
        "dtype": dtype,  # >= 5
        "bos_token_id": ids.get("bos_token_id"),
        "eos_token_id": ids.get("eos_token_id"),
        "pad_token_id": ids.get("pad_token_id"),
    }
    if model_type == "llama":
        out["mlp_bias"] = False
        out["pretraining_tp"] = 1
    if cfg.family == "qwen3":
        out.update(use_sliding_window=False, sliding_window=None, max_window_layers=cfg.n_layers)
    if cfg.family in _DEFAULT_WINDOW_INTERVAL:  # olmo3, gemma3: per-layer-type attention and RoPE
        local = cfg.rope_local_theta or cfg.rope_theta
        out.update(sliding_window=cfg.sliding_window, layer_types=cfg.layer_types(),
                   rope_parameters={"full_attention": full_rope,
                                    "sliding_attention": {"rope_theta": local, "rope_type": "default"}})
    if cfg.family == "gemma3":
        del out["hidden_act"]
        out.update(hidden_activation="gelu_pytorch_tanh", rope_local_base_freq=cfg.rope_local_theta or cfg.rope_theta,
                   sliding_window_pattern=cfg.full_attention_interval,
                   query_pre_attn_scalar=_whole(cfg.query_pre_attn_scalar or cfg.head_size),
                   final_logit_softcapping=cfg.final_logit_softcap, attn_logit_softcapping=None)
    return out


def _olmoe_config(cfg: ModelConfig, dtype: str, max_position_embeddings: Optional[int],
                  ids: Dict[str, Optional[int]]) -> Dict[str, Any]:
    moe = cfg.moe
    return {
        "architectures": ["OlmoeForCausalLM"], "model_type": "olmoe",
        "hidden_size": cfg.d_model, "intermediate_size": moe.hidden_size, "num_hidden_layers": cfg.n_layers,
        "num_attention_heads": cfg.n_heads, "num_key_value_heads": cfg.kv_heads, "vocab_size": cfg.vocab_size,
        "hidden_act": "silu", "max_position_embeddings": max_position_embeddings or _DEFAULT_MAX_POSITIONS,
        "rms_norm_eps": cfg.norm_eps, "rope_theta": cfg.rope_theta,  # transformers < 5
        "rope_scaling": None, "rope_parameters": {"rope_theta": cfg.rope_theta, "rope_type": "default"},  # >= 5
        "attention_bias": False, "attention_dropout": 0.0, "clip_qkv": None,
        "num_experts": moe.num_experts, "num_experts_per_tok": moe.top_k, "norm_topk_prob": moe.normalize_top_k,
        "router_aux_loss_coef": moe.aux_loss_weight or 0.0, "output_router_logits": False,
        "tie_word_embeddings": cfg.tie_embeddings, "initializer_range": cfg.init_std, "use_cache": True,
        "torch_dtype": dtype, "dtype": dtype,
        "bos_token_id": ids.get("bos_token_id"), "eos_token_id": ids.get("eos_token_id"),
        "pad_token_id": ids.get("pad_token_id"),
    }


def _scaling_to_hf(cfg: ModelConfig) -> Dict[str, Any]:
    """The RoPE scaling keys of config.json ({} for none): rope_type and the fields that are set,
    under the same names (transformers fills the unset ones with the same defaults)."""
    scaling = cfg.rope_scaling
    if not scaling.enabled:
        return {}
    if scaling.truncate is False and MODEL_TYPE[cfg.family] in _PER_LAYER_ROPE:
        raise UserError("model.rope_scaling.truncate", f"transformers ignores truncate in {cfg.family}'s "
                        "per-layer-type RoPE config and always truncates; truncate = false has no HuggingFace "
                        "equivalent for this family (unset it)")
    required, optional = TYPE_FIELDS[scaling.type]
    return {"rope_type": scaling.type, **{name: getattr(scaling, name) for name in required + optional
                                           if getattr(scaling, name) is not None}}


def _whole(value: float):
    """HF's typed configs want an int where the value is whole (query_pre_attn_scalar: int)."""
    return int(value) if float(value).is_integer() else value


def first_id(value: Any) -> Optional[int]:
    """HF allows a list of EOS ids (Llama 3.1); the engine has one."""
    if isinstance(value, list):
        value = value[0] if value else None
    return value if isinstance(value, int) and not isinstance(value, bool) else None
