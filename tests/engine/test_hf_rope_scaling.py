"""Scaled RoPE across the HF boundary, against the real transformers classes: OLMo-3 with YaRN on
its full-attention layers, Gemma-3 with linear scaling on its global layers, Llama with
Llama 3.1's `llama3` bands. Tiny random models convert from HF with the same logits (fp32,
max |diff| < 1e-4), back to HF with the same logits again, and both config.json spellings
(legacy `rope_scaling`, transformers-5 `rope_parameters`) are read and written.

The released configs' own numbers (OLMo-3 7B, Gemma-3 4B, Llama 3.1 8B) are checked at the
config level: what from-hf makes of them, and that transformers reads our to-hf output the way it
reads the released file. The tiny models use the same kinds with bands placed inside their 8
frequency pairs, so every regime (kept, blended, interpolated) is exercised at SEQ tokens.
"""

from __future__ import annotations

import json

import pytest
import torch

pytest.importorskip("transformers")

from hf_helpers import engine_logits_like_the_trainer, hf_logits, leftovers, make_hf_model, random_ids  # noqa: E402

from engine.config import RopeScalingConfig  # noqa: E402
from engine.errors import UserError  # noqa: E402
from engine.hf.cli import main_convert  # noqa: E402
from engine.hf.config_map import hf_config_from_model, model_config_from_hf  # noqa: E402
from engine.hf.engine_ckpt import read_checkpoint_config  # noqa: E402

ATOL = 1e-4
SEQ = 48
_YARN = {"rope_type": "yarn", "rope_theta": 1e4, "factor": 8.0, "original_max_position_embeddings": 4096,
         "beta_fast": 32, "beta_slow": 1, "attention_factor": 1.2079441541679836}
# family -> (HF config kwargs in transformers-5 spelling, expected model.rope_scaling fields)
CASES = {
    "olmo3+yarn": ("olmo3", dict(num_hidden_layers=4, sliding_window=8, max_position_embeddings=32768,
                                 rope_parameters={"full_attention": dict(_YARN),
                                                  "sliding_attention": {"rope_type": "default", "rope_theta": 1e4}}),
                   dict(type="yarn", factor=8.0, original_max_position_embeddings=4096, beta_fast=32.0, beta_slow=1.0,
                        attention_factor=1.2079441541679836)),
    "gemma3+linear": ("gemma3", dict(num_hidden_layers=3, head_dim=24, sliding_window=8, sliding_window_pattern=3,
                                     query_pre_attn_scalar=20, rope_parameters={
                                         "full_attention": {"rope_type": "linear", "rope_theta": 1e6, "factor": 8.0},
                                         "sliding_attention": {"rope_type": "default", "rope_theta": 1e4}}),
                      dict(type="linear", factor=8.0)),
    "llama+llama3": ("llama", dict(max_position_embeddings=2048, rope_parameters={
                         "rope_type": "llama3", "rope_theta": 1e4, "factor": 8.0, "original_max_position_embeddings": 256,
                         "low_freq_factor": 1.0, "high_freq_factor": 4.0}),
                     dict(type="llama3", factor=8.0, original_max_position_embeddings=256, low_freq_factor=1.0,
                          high_freq_factor=4.0)),
}


def _convert(*args) -> int:
    return main_convert([str(a) for a in args])


def _scaling_fields(cfg) -> dict:
    return cfg.rope_scaling.model_dump(exclude_none=True)


@pytest.mark.parametrize("case", list(CASES))
def test_scaled_rope_round_trip_matches_transformers_logits(tmp_path, case):
    family, hf_kwargs, expected = CASES[case]
    src, engine_dir, back = tmp_path / "hf", tmp_path / "engine", tmp_path / "hf-back"
    make_hf_model(src, family, **hf_kwargs)
    assert _convert("from-hf", src, engine_dir, "--no-validate") == 0
    cfg = read_checkpoint_config(engine_dir).model
    assert _scaling_fields(cfg) == expected

    ids = random_ids(shape=(2, SEQ))
    reference = hf_logits(src, ids)
    ours = engine_logits_like_the_trainer(engine_dir, cfg, ids)
    assert (ours - reference).abs().max().item() < ATOL
    # The scaling decides the logits: the same weights with plain RoPE give others.
    unscaled = cfg.model_copy(update={"rope_scaling": RopeScalingConfig()})
    plain = engine_logits_like_the_trainer(engine_dir, unscaled, ids)
    assert (plain - reference).abs().max().item() > 1e-2

    assert _convert("to-hf", engine_dir, back, "--no-validate") == 0
    written = json.loads((back / "config.json").read_text())
    legacy = written["rope_scaling"]
    assert legacy == {"rope_type": expected["type"], **{k: v for k, v in expected.items() if k != "type"}}
    modern = written["rope_parameters"].get("full_attention", written["rope_parameters"])
    assert {k: v for k, v in modern.items() if k != "rope_theta"} == legacy
    if "sliding_attention" in written["rope_parameters"]:
        assert written["rope_parameters"]["sliding_attention"]["rope_type"] == "default"
    assert model_config_from_hf(written) == cfg
    returned = hf_logits(back, ids)
    assert (returned - reference).abs().max().item() < ATOL
    assert leftovers(tmp_path) == []


def _legacy(hf: dict) -> dict:
    """The transformers-4 spelling of a config: top-level theta(s) and `rope_scaling` only."""
    return {key: value for key, value in hf.items() if key != "rope_parameters"}


_OLMO3_7B = dict(  # allenai/Olmo-3-1025-7B config.json: YaRN x8 from the 8192-token pre-training context
    model_type="olmo3", hidden_size=4096, num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=32,
    intermediate_size=11008, vocab_size=100278, rms_norm_eps=1e-6, max_position_embeddings=65536,
    rope_theta=500000, sliding_window=4096,
    layer_types=["full_attention" if (i + 1) % 4 == 0 else "sliding_attention" for i in range(32)],
    rope_scaling={"rope_type": "yarn", "factor": 8.0, "original_max_position_embeddings": 8192, "beta_fast": 32,
                  "beta_slow": 1, "attention_factor": 1.2079441541679836})
_GEMMA3_4B = dict(  # google/gemma-3-4b-pt text config: linear x8 on the global layers
    model_type="gemma3_text", hidden_size=2560, num_hidden_layers=34, num_attention_heads=8, num_key_value_heads=4,
    head_dim=256, intermediate_size=10240, vocab_size=262208, max_position_embeddings=131072, rope_theta=1e6,
    rope_local_base_freq=1e4, sliding_window=1024, sliding_window_pattern=6, query_pre_attn_scalar=256,
    rope_scaling={"rope_type": "linear", "factor": 8.0})
_LLAMA31_8B = dict(  # meta-llama/Llama-3.1-8B config.json
    model_type="llama", hidden_size=4096, num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=8,
    intermediate_size=14336, vocab_size=128256, max_position_embeddings=131072, rope_theta=500000.0,
    rms_norm_eps=1e-5, rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                     "high_freq_factor": 4.0, "original_max_position_embeddings": 8192})


@pytest.mark.parametrize("released", [_OLMO3_7B, _GEMMA3_4B, _LLAMA31_8B], ids=["olmo3-7b", "gemma3-4b", "llama3.1-8b"])
def test_released_configs_convert_and_transformers_reads_them_back_the_same(released):
    import transformers as tf

    cfg = model_config_from_hf(released)
    assert cfg.rope_scaling.type == released["rope_scaling"]["rope_type"]
    assert cfg.rope_scaling.factor == 8.0
    exported = hf_config_from_model(cfg, max_position_embeddings=released["max_position_embeddings"])
    assert exported["max_position_embeddings"] == released["max_position_embeddings"]
    for spelling in (exported, _legacy(exported)):  # transformers 5 reads either spelling the same way
        ours = tf.AutoConfig.for_model(**spelling).rope_parameters
        theirs = tf.AutoConfig.for_model(**released).rope_parameters
        assert ours == theirs
        assert model_config_from_hf(spelling) == cfg


def _refusal(hf: dict):
    with pytest.raises(UserError) as caught:
        model_config_from_hf(hf)
    field, message = caught.value.field, caught.value.message
    assert "\n" not in message
    return field, message


@pytest.mark.parametrize("change, field, words", [
    (dict(rope_scaling={"rope_type": "dynamic", "factor": 2.0}), "config.json: rope_scaling.rope_type",
     ("'dynamic' is not supported", "default, linear, yarn, llama3")),
    (dict(rope_scaling={"rope_type": "linear", "factor": 0.5}), "config.json: rope_scaling.factor",
     ("greater than or equal to 1",)),
    (dict(rope_scaling={"rope_type": "llama3", "factor": 8.0, "original_max_position_embeddings": 8192}),
     "config.json: rope_scaling.low_freq_factor", ("required for type 'llama3'",)),
    (dict(partial_rotary_factor=0.5), "config.json: partial_rotary_factor", ("0.5 is not supported",)),
])
def test_unsupported_llama_rope_is_refused_in_one_line(change, field, words):
    got, message = _refusal({**_LLAMA31_8B, **change})
    assert got == field and all(word in message for word in words), (got, message)


def test_olmo3_scaling_that_transformers_would_read_otherwise_is_refused():
    rope = {"full_attention": {**_OLMO3_7B["rope_scaling"], "rope_theta": 5e5, "truncate": False},
            "sliding_attention": {"rope_type": "default", "rope_theta": 5e5}}
    field, message = _refusal({**_legacy(_OLMO3_7B), "rope_scaling": None, "rope_parameters": rope})
    assert field == "config.json: rope_parameters.full_attention.truncate" and "ignores" in message
    rope = {"full_attention": {"rope_type": "default", "rope_theta": 5e5},
            "sliding_attention": {"rope_type": "linear", "factor": 2.0, "rope_theta": 5e5}}
    field, message = _refusal({**_legacy(_OLMO3_7B), "rope_scaling": None, "rope_parameters": rope})
    assert field == "config.json: rope_parameters.sliding_attention.rope_type" and "sliding-window" in message

    cfg = model_config_from_hf(_OLMO3_7B)
    untruncated = cfg.model_copy(update={"rope_scaling": cfg.rope_scaling.model_copy(update={"truncate": False})})
    with pytest.raises(UserError, match="truncate") as caught:
        hf_config_from_model(untruncated)
    assert caught.value.field == "model.rope_scaling.truncate"


RUN = ["--data_loader.global_batch_size=256", "--train_module.rank_microbatch_size=256",
       "--trainer.max_duration=2 steps", "--trainer.metrics_collect_interval=1",
       "--trainer.callbacks.lm_evaluator.enabled=false"]


def test_finetune_hf_trains_a_converted_yarn_olmo3_with_its_scaling(tmp_path, capsys):
    from test_hf_finetune import _first_batch_losses

    from engine.cli import main
    from engine.config import resolve
    from engine.data.loader import build_train_loader

    family, hf_kwargs, expected = CASES["olmo3+yarn"]
    hf_dir, converted, run_dir = tmp_path / "hf", tmp_path / "engine", tmp_path / "runs" / "ft"
    hf_model = make_hf_model(hf_dir, family, seed=3, **hf_kwargs)
    assert _convert("from-hf", hf_dir, converted, "--no-validate") == 0
    cfg = resolve(config_file=str(converted / "config.toml"), overrides=RUN)
    assert _scaling_fields(cfg.model) == expected  # the fine-tuning config carries the scaling
    hf_loss, _ = _first_batch_losses(cfg, hf_model)
    # The same weights under plain RoPE would start elsewhere: the match below needs the scaling.
    ids = next(iter(build_train_loader(cfg)))["input_ids"]
    unscaled = cfg.model.model_copy(update={"rope_scaling": RopeScalingConfig()})
    plain = engine_logits_like_the_trainer(converted, unscaled, ids)
    plain_loss = torch.nn.functional.cross_entropy(plain[:, :-1].flatten(0, 1), ids[:, 1:].flatten()).item()
    assert abs(plain_loss - hf_loss) > 1e-3, (plain_loss, hf_loss)

    capsys.readouterr()
    code = main(["ft", "--config", str(converted / "config.toml"), "--run-dir", str(run_dir), *RUN])
    _, err = capsys.readouterr()
    assert code == 0, err[-2000:]
    losses = [json.loads(line)["loss"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert len(losses) == 2
    assert abs(losses[0] - hf_loss) < 1e-4, (losses[0], hf_loss)  # step 1 ran the YaRN model HF runs
