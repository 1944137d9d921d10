"""The name/shape tables and the config mapping, without transformers: expected_shapes agrees
with the real Transformer, every HF name is distinct, and every built-in preset's architecture
survives ModelConfig -> config.json -> ModelConfig."""

from __future__ import annotations

import pytest

from engine.config import ModelConfig, list_presets, resolve
from engine.errors import UserError
from engine.hf.config_map import hf_config_from_model, model_config_from_hf
from engine.hf.key_map import engine_to_hf_names, expected_shapes
from engine.nn.transformer import build_model

CONFIGS = {
    "llama gqa": ModelConfig(family="llama", d_model=64, n_layers=2, n_heads=4, n_kv_heads=2, vocab_size=384),
    "llama tied": ModelConfig(family="llama", d_model=64, n_layers=3, n_heads=4, vocab_size=256, tie_embeddings=True),
    "olmo2 qk-norm": ModelConfig(family="olmo2", d_model=64, n_layers=2, n_heads=8, n_kv_heads=2, qk_norm=True,
                                 mlp_hidden_size=96, vocab_size=128),
}


@pytest.mark.parametrize("name", list(CONFIGS))
def test_expected_shapes_and_names_cover_the_real_model(name):
    cfg = CONFIGS[name]
    real = {k: tuple(v.shape) for k, v in build_model(cfg, "meta").state_dict().items()}
    assert expected_shapes(cfg) == real
    names = engine_to_hf_names(cfg)
    assert set(names) == set(real) and len(set(names.values())) == len(names)


def _architecture(cfg: ModelConfig) -> tuple:
    return (cfg.family, cfg.d_model, cfg.n_layers, cfg.n_heads, cfg.kv_heads, cfg.mlp_hidden, cfg.vocab_size,
            cfg.rope_theta, cfg.norm_eps, cfg.qk_norm, cfg.tie_embeddings, cfg.moe)


@pytest.mark.parametrize("preset", [ref.name for ref in list_presets() if ref.builtin])
def test_every_preset_architecture_round_trips_through_config_json(preset):
    cfg = resolve(preset=preset).model
    back = model_config_from_hf(hf_config_from_model(cfg))
    assert _architecture(back) == _architecture(cfg)


def test_unsupported_engine_variants_have_no_hf_equivalent():
    with pytest.raises(UserError, match="model.qk_norm"):
        hf_config_from_model(ModelConfig(family="olmo2", qk_norm=False))
    with pytest.raises(UserError, match="model.qk_norm"):
        hf_config_from_model(ModelConfig(family="llama", qk_norm=True))


def test_legacy_and_v5_rope_spellings_are_both_read():
    base = {"model_type": "llama", "hidden_size": 64, "num_hidden_layers": 1, "num_attention_heads": 4,
            "intermediate_size": 128, "vocab_size": 256}
    assert model_config_from_hf({**base, "rope_theta": 5e5}).rope_theta == 5e5
    assert model_config_from_hf({**base, "rope_parameters": {"rope_theta": 2e4, "rope_type": "default"}}).rope_theta == 2e4
    legacy = model_config_from_hf({**base, "rope_theta": 5e5, "rope_scaling": {"rope_type": "linear", "factor": 4.0}})
    modern = model_config_from_hf({**base, "rope_parameters": {"rope_theta": 5e5, "rope_type": "linear", "factor": 4.0}})
    assert legacy == modern and (legacy.rope_scaling.type, legacy.rope_scaling.factor) == ("linear", 4.0)
    with pytest.raises(UserError, match="config.json: head_dim"):
        model_config_from_hf({**base, "head_dim": 32})
