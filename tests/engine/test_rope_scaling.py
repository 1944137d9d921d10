"""model.rope_scaling (engine/config/rope_scaling.py, engine/nn/rope.py): the engine's cos / sin
tables against transformers' own rotary-embedding modules for each scaling type, per layer type
for the families with sliding-window layers, and every bad field refused in one line."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("transformers")

from engine.config import ModelConfig, RopeScalingConfig, validate_experiment  # noqa: E402
from engine.nn.rope import base_frequencies, rope_tables, scaled_frequencies  # noqa: E402
from engine.nn.transformer import build_model  # noqa: E402

HEAD_DIM, THETA, T = 128, 500_000.0, 4096
# (transformers' rope_parameters, ours): the released models' numbers, and every YaRN option.
CASES = {
    "linear (Gemma-3 4B+)": ({"rope_type": "linear", "factor": 8.0}, dict(type="linear", factor=8.0)),
    "yarn (OLMo-3 7B/32B)": ({"rope_type": "yarn", "factor": 8.0, "original_max_position_embeddings": 8192,
                              "beta_fast": 32, "beta_slow": 1, "attention_factor": 1.2079441541679836},
                             dict(type="yarn", factor=8.0, original_max_position_embeddings=8192, beta_fast=32,
                                  beta_slow=1, attention_factor=1.2079441541679836)),
    "yarn, attention factor from factor": ({"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 2048},
                                           dict(type="yarn", factor=4.0, original_max_position_embeddings=2048)),
    "yarn, untruncated, own betas": ({"rope_type": "yarn", "factor": 16.0, "original_max_position_embeddings": 1024,
                                      "beta_fast": 16, "beta_slow": 2, "truncate": False},
                                     dict(type="yarn", factor=16.0, original_max_position_embeddings=1024,
                                          beta_fast=16, beta_slow=2, truncate=False)),
    "llama3 (Llama 3.1)": ({"rope_type": "llama3", "factor": 8.0, "original_max_position_embeddings": 8192,
                            "low_freq_factor": 1.0, "high_freq_factor": 4.0},
                           dict(type="llama3", factor=8.0, original_max_position_embeddings=8192,
                                low_freq_factor=1.0, high_freq_factor=4.0)),
}


def _hf_tables(rotary, length: int, **kwargs):
    x = torch.zeros(1, length, HEAD_DIM)
    cos, sin = rotary(x, torch.arange(length)[None], **kwargs)
    return cos[0], sin[0]


@pytest.mark.parametrize("name", list(CASES))
def test_tables_match_transformers(name):
    import transformers as tf
    from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding

    hf_params, ours = CASES[name]
    factor = hf_params["factor"]
    context = int(factor * hf_params.get("original_max_position_embeddings", 8192))
    hf_config = tf.LlamaConfig(hidden_size=1024, num_attention_heads=8, head_dim=HEAD_DIM,
                               max_position_embeddings=context, rope_parameters={"rope_theta": THETA, **hf_params})
    hf_cos, hf_sin = _hf_tables(LlamaRotaryEmbedding(hf_config), T)
    cos, sin = rope_tables(HEAD_DIM, T, THETA, "cpu", RopeScalingConfig(**ours))
    assert torch.equal(cos, hf_cos) and torch.equal(sin, hf_sin)  # the same float32 roundings
    freqs, _ = scaled_frequencies(HEAD_DIM, THETA, RopeScalingConfig(**ours))
    ratio = base_frequencies(HEAD_DIM, THETA) / freqs
    assert ratio.max().item() == pytest.approx(factor)  # the slowest pairs are divided by factor...
    if ours["type"] != "linear":  # ...and the banded types keep the fastest ones, blending between
        assert ratio[0].item() == 1.0 and ((ratio > 1.01) & (ratio < factor - 0.01)).any()


@pytest.mark.parametrize("family, layer_types", [("olmo3", ["sliding_attention", "full_attention"]),
                                                  ("gemma3", ["sliding_attention", "full_attention"])])
def test_full_layers_are_scaled_and_sliding_layers_plain_as_in_transformers(family, layer_types):
    import transformers as tf
    from transformers.models.gemma3.modeling_gemma3 import Gemma3RotaryEmbedding
    from transformers.models.olmo3.modeling_olmo3 import Olmo3RotaryEmbedding

    yarn = {"rope_type": "yarn", "factor": 8.0, "original_max_position_embeddings": 512}
    scaling = {"olmo3": yarn, "gemma3": {"rope_type": "linear", "factor": 8.0}}[family]
    config_cls, rotary_cls = {"olmo3": (tf.Olmo3Config, Olmo3RotaryEmbedding),
                              "gemma3": (tf.Gemma3TextConfig, Gemma3RotaryEmbedding)}[family]
    # The legacy spelling, as the released config.json files have it: transformers puts it on the
    # full-attention layers only. Thetas as released: OLMo-3 500k on all layers, Gemma-3 1M / 10k.
    theta, theta_local = {"olmo3": (5e5, 5e5), "gemma3": (1e6, 1e4)}[family]
    hf_config = config_cls(hidden_size=256, num_attention_heads=2, head_dim=HEAD_DIM, num_hidden_layers=2,
                           layer_types=layer_types, sliding_window=64, max_position_embeddings=4096,
                           rope_theta=theta, rope_local_base_freq=theta_local, rope_scaling=dict(scaling))
    rotary = rotary_cls(hf_config)
    ours = ModelConfig(family=family, d_model=256, n_layers=2, n_heads=2, head_dim=HEAD_DIM, sliding_window=64,
                       full_attention_interval=2, rope_theta=theta,
                       rope_local_theta=theta_local if theta_local != theta else None,
                       rope_scaling=RopeScalingConfig(type=scaling["rope_type"], factor=8.0,
                                                      original_max_position_embeddings=scaling.get(
                                                          "original_max_position_embeddings")))
    model = build_model(ours, "cpu")
    length = 1024
    for sliding, layer_type in ((False, "full_attention"), (True, "sliding_attention")):
        hf_cos, hf_sin = _hf_tables(rotary, length, layer_type=layer_type)
        cos, sin = model.rope(length, torch.device("cpu"), sliding=sliding)
        assert torch.equal(cos[:length], hf_cos) and torch.equal(sin[:length], hf_sin), layer_type
    assert torch.equal(model.rope(length, torch.device("cpu"), sliding=True)[0],
                       rope_tables(HEAD_DIM, length, theta_local, "cpu")[0])  # plain RoPE


def _issue(rope_scaling: dict):
    cfg, issues = validate_experiment({"model": {"rope_scaling": rope_scaling}})
    assert cfg is None and len(issues) == 1
    (issue,) = issues
    return issue.paths, issue.message


@pytest.mark.parametrize("rope_scaling, path, words", [
    ({"type": "ntk"}, "type", ("'none', 'linear', 'yarn' or 'llama3'",)),
    ({"type": "yarn", "factor": 8.0}, "original_max_position_embeddings", ("required", "yarn takes: factor")),
    ({"type": "linear"}, "factor", ("required", "linear takes: factor")),
    ({"type": "linear", "factor": 8.0, "beta_fast": 16}, "beta_fast", ("type yarn, not 'linear'", "factor")),
    ({"type": "none", "factor": 4.0}, "factor", ("not 'none'",)),
    ({"type": "linear", "factor": 0.5}, "factor", ("greater than or equal to 1",)),
    ({"type": "yarn", "factor": 4.0, "original_max_position_embeddings": 4096, "beta_fast": 1, "beta_slow": 2},
     "beta_fast", ("greater than beta_slow",)),
    ({"type": "llama3", "factor": 8.0, "original_max_position_embeddings": 8192, "low_freq_factor": 4.0,
      "high_freq_factor": 1.0}, "high_freq_factor", ("greater than low_freq_factor",)),
    ({"type": "yarn", "factor": 4.0, "original_max_position_embeddings": 4096, "truncate": "maybe"},
     "truncate", ("true or false",)),
])
def test_bad_fields_are_one_line_naming_the_field(rope_scaling, path, words):
    paths, message = _issue(rope_scaling)
    assert paths == (f"model.rope_scaling.{path}",)
    assert "\n" not in message and all(word in message for word in words), message


def test_cli_refuses_a_bad_type_in_one_line(capsys):
    from olmo_tui.cli.main import main

    code = main(["--preset", "olmo3-7b", "--model.rope_scaling.type=yarn", "--model.rope_scaling.factor=8",
                 "--dry-run"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and "model.rope_scaling.original_max_position_embeddings" in err[0], err


def test_overrides_switch_yarn_on_and_the_plain_default_is_unchanged():
    from engine.config import resolve

    cfg = resolve(preset="olmo3-7b", overrides=["--model.rope_scaling.type=yarn", "--model.rope_scaling.factor=8",
                                                "--model.rope_scaling.original_max_position_embeddings=8192"])
    scaling = cfg.model.rope_scaling
    assert (scaling.type, scaling.factor, scaling.scaled_context) == ("yarn", 8.0, 65536)
    assert scaling.attention_scale == pytest.approx(1.2079441541679836)
    assert resolve(preset="olmo3-7b").model.rope_scaling.type == "none"  # presets pre-train with plain RoPE
