"""ModelConfig <-> HuggingFace `config.json` (LlamaConfig / Olmo2Config), torch-free.

Only what the engine can reproduce exactly is accepted: SwiGLU with SiLU, no biases, plain RoPE
(no rope scaling), head_dim = hidden_size / num_attention_heads. Anything else is refused with
one line naming the config.json key, before a byte is written, rather than converted into a
model that silently computes something different.

Both spellings of RoPE's base are read (transformers < 5: top-level `rope_theta` and
`rope_scaling`; transformers >= 5: `rope_parameters = {rope_theta, rope_type}`), and both are
written, so the exported directory loads in either version.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, Optional

from engine.config import ModelConfig
from engine.errors import UserError

# model_type -> (engine family, HF architecture class name). OLMo-2 always has QK-norm.
ARCHITECTURES = {
    "llama": ("llama", "LlamaForCausalLM"),
    "olmo2": ("olmo2", "Olmo2ForCausalLM"),
}
SUPPORTED = ", ".join(ARCHITECTURES)

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


def _rope(hf: Dict[str, Any]) -> tuple[float, Optional[str]]:
    """(theta, scaling type or None) from either transformers generation of config.json."""
    params = hf.get("rope_parameters")
    if isinstance(params, dict) and "full_attention" in params:  # per-layer-type form
        params = params["full_attention"]
    theta = hf.get("rope_theta")
    scaling = None
    if isinstance(params, dict):
        theta = params.get("rope_theta", theta)
        scaling = params.get("rope_type") or params.get("type")
    legacy = hf.get("rope_scaling")
    if isinstance(legacy, dict):
        scaling = legacy.get("rope_type") or legacy.get("type") or scaling
    if scaling in (None, "default"):
        scaling = None
    return float(theta if theta is not None else 10_000.0), scaling


def _int(hf: Dict[str, Any], key: str) -> int:
    value = hf.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise UserError(f"config.json: {key}", f"must be a positive integer, got {value!r}")
    return value


def model_config_from_hf(hf: Dict[str, Any]) -> ModelConfig:
    """The engine's ModelConfig for an HF Llama / OLMo-2 config; UserError if unsupported."""
    model_type = hf.get("model_type")
    if model_type not in ARCHITECTURES:
        raise UserError("config.json: model_type",
                        f"unknown architecture {model_type!r}: supported are {SUPPORTED}")
    family = ARCHITECTURES[model_type][0]
    d_model = _int(hf, "hidden_size")
    n_heads = _int(hf, "num_attention_heads")
    n_kv_heads = hf.get("num_key_value_heads") or n_heads
    if d_model % n_heads:
        raise UserError("config.json: num_attention_heads",
                        f"hidden_size {d_model} is not divisible by {n_heads} heads")
    head_dim = hf.get("head_dim")
    if head_dim is not None and head_dim != d_model // n_heads:
        raise UserError("config.json: head_dim", f"{head_dim} differs from hidden_size / num_attention_heads "
                        f"= {d_model // n_heads}; the engine derives head_dim from d_model")
    act = hf.get("hidden_act", "silu")
    if act != "silu":
        raise UserError("config.json: hidden_act", f"{act!r} is not supported (the engine's MLP is SwiGLU: silu)")
    for key in ("attention_bias", "mlp_bias"):
        if hf.get(key):
            raise UserError(f"config.json: {key}", "biases are not supported (the engine's linears have none)")
    theta, scaling = _rope(hf)
    if scaling is not None:
        raise UserError("config.json: rope_scaling", f"RoPE scaling {scaling!r} is not supported "
                        "(the engine implements plain RoPE with a base frequency)")
    try:
        return ModelConfig(
            family=family,
            d_model=d_model,
            n_layers=_int(hf, "num_hidden_layers"),
            n_heads=n_heads,
            n_kv_heads=None if n_kv_heads == n_heads else n_kv_heads,
            mlp_hidden_size=_int(hf, "intermediate_size"),
            vocab_size=_int(hf, "vocab_size"),
            rope_theta=theta,
            norm_eps=float(hf.get("rms_norm_eps", 1e-6 if family == "llama" else 1e-5)),
            qk_norm=family == "olmo2",
            # Llama's and OLMo-2's config classes both default to untied embeddings.
            tie_embeddings=bool(hf.get("tie_word_embeddings", False)),
            init_std=float(hf.get("initializer_range", 0.02)),
        )
    except ValueError as exc:  # pydantic: shapes the engine cannot build
        first = str(exc).splitlines()
        raise UserError("config.json", first[-1] if first else str(exc)) from None


def hf_config_from_model(cfg: ModelConfig, *, dtype: str = "float32",
                         max_position_embeddings: Optional[int] = None,
                         token_ids: Optional[Dict[str, Optional[int]]] = None) -> Dict[str, Any]:
    """config.json content for `cfg` (a dict; transformers reads it with AutoConfig)."""
    if cfg.family == "olmo2" and not cfg.qk_norm:
        raise UserError("model.qk_norm", "HF's Olmo2 always applies QK-norm; this olmo2 model has "
                        "qk_norm = false and has no HuggingFace equivalent")
    if cfg.family == "llama" and cfg.qk_norm:
        raise UserError("model.qk_norm", "HF's Llama has no QK-norm; a llama model with qk_norm = true "
                        "has no HuggingFace equivalent")
    model_type = cfg.family
    ids = token_ids or {}
    out: Dict[str, Any] = {
        "architectures": [ARCHITECTURES[model_type][1]],
        "model_type": model_type,
        "hidden_size": cfg.d_model,
        "intermediate_size": cfg.mlp_hidden,
        "num_hidden_layers": cfg.n_layers,
        "num_attention_heads": cfg.n_heads,
        "num_key_value_heads": cfg.kv_heads,
        "head_dim": cfg.head_dim,
        "vocab_size": cfg.vocab_size,
        "hidden_act": "silu",
        "max_position_embeddings": max_position_embeddings or _DEFAULT_MAX_POSITIONS,
        "rms_norm_eps": cfg.norm_eps,
        "rope_theta": cfg.rope_theta,  # transformers < 5
        "rope_scaling": None,
        "rope_parameters": {"rope_theta": cfg.rope_theta, "rope_type": "default"},  # >= 5
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
    return out


def first_id(value: Any) -> Optional[int]:
    """HF allows a list of EOS ids (Llama 3.1); the engine has one."""
    if isinstance(value, list):
        value = value[0] if value else None
    return value if isinstance(value, int) and not isinstance(value, bool) else None
