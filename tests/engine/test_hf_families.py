"""OLMo-3, Qwen3 and Gemma-3 against the real transformers classes: tiny random models convert
both ways with the same logits (max |diff| < 1e-4, fp32), every family feature switched on and
exercised (the sequence is longer than the sliding window; a check below shows the window
decides the logits); and `finetune-hf` trains from a converted Qwen3 checkpoint.

The engine side is loaded the way the trainer loads trainer.load_path; the HF side through
AutoModelForCausalLM.from_pretrained.
"""

from __future__ import annotations

import json

import pytest
import torch

pytest.importorskip("transformers")

from hf_helpers import engine_logits_like_the_trainer, hf_logits, leftovers, make_hf_model, random_ids  # noqa: E402
from test_hf_finetune import _first_batch_losses, _pretrain_with_transformers  # noqa: E402

from engine.cli import main  # noqa: E402
from engine.config import resolve  # noqa: E402
from engine.hf.cli import main_convert  # noqa: E402
from engine.hf.engine_ckpt import read_checkpoint_config  # noqa: E402

ATOL = 1e-4
SEQ = 40  # longer than the windows below, so sliding layers really cut
# Every family feature on: windows shorter than SEQ, head_dim apart from hidden / heads (qwen3,
# gemma3), tied embeddings (qwen3), local / global RoPE bases and a pre-attention scalar that is
# not head_dim (gemma3), a final soft-cap (gemma3; the 1B release has none, Gemma-2 had 30).
FAMILIES = {
    "olmo3": (dict(num_hidden_layers=4, sliding_window=8),
              dict(sliding_window=8, full_attention_interval=4, head_size=16)),
    "qwen3": (dict(head_dim=24, tie_word_embeddings=True),
              dict(sliding_window=None, head_size=24, tie_embeddings=True)),
    "gemma3": (dict(num_hidden_layers=3, head_dim=24, sliding_window=8, sliding_window_pattern=3,
                    query_pre_attn_scalar=20, rope_theta=1e6, rope_local_base_freq=1e4,
                    final_logit_softcapping=5.0),
               dict(sliding_window=8, full_attention_interval=3, head_size=24, rope_local_theta=1e4,
                    query_pre_attn_scalar=20.0, final_logit_softcap=5.0, tie_embeddings=False)),
}


def _convert(*args) -> int:
    return main_convert([str(a) for a in args])


@pytest.mark.parametrize("family", list(FAMILIES))
def test_round_trip_matches_transformers_logits(tmp_path, family):
    hf_kwargs, expected = FAMILIES[family]
    src, engine_dir, back = tmp_path / "hf", tmp_path / "engine", tmp_path / "hf-back"
    make_hf_model(src, family, **hf_kwargs)
    assert _convert("from-hf", src, engine_dir) == 0
    cfg = read_checkpoint_config(engine_dir).model
    assert cfg.family == family and cfg.qk_norm and cfg.kv_heads == 2
    assert {key: getattr(cfg, key) for key in expected} == expected

    ids = random_ids(shape=(2, SEQ))
    reference = hf_logits(src, ids)
    assert reference.std() > 0.5  # widely spread logits: a wrong tensor cannot hide
    ours = engine_logits_like_the_trainer(engine_dir, cfg, ids)
    assert (ours - reference).abs().max().item() < ATOL
    if cfg.sliding_window:  # the window matters: without it the same weights give other logits
        unwindowed = cfg.model_copy(update={"sliding_window": 10 * SEQ})
        off = engine_logits_like_the_trainer(engine_dir, unwindowed, ids)
        assert (off - reference).abs().max().item() > 1e-2

    assert _convert("to-hf", engine_dir, back) == 0
    config = json.loads((back / "config.json").read_text())
    assert config["model_type"] == {"gemma3": "gemma3_text"}.get(family, family)
    returned = hf_logits(back, ids)
    assert (returned - reference).abs().max().item() < ATOL
    assert leftovers(tmp_path) == []


def test_multimodal_gemma3_is_refused_in_one_line(tmp_path, capsys):
    src = tmp_path / "gemma"
    src.mkdir()
    (src / "config.json").write_text(json.dumps({"model_type": "gemma3", "text_config": {}}))
    assert _convert("from-hf", src, tmp_path / "out") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "gemma3_text" in err[0]
    assert not (tmp_path / "out").exists()


STEPS = 8
RUN = ["--data_loader.global_batch_size=256", "--train_module.rank_microbatch_size=256",
       f"--trainer.max_duration={STEPS} steps", "--trainer.metrics_collect_interval=1",
       "--trainer.callbacks.lm_evaluator.enabled=false"]


def test_finetune_hf_trains_from_a_converted_qwen3(tmp_path, capsys):
    hf_dir, converted, run_dir = tmp_path / "hf", tmp_path / "engine", tmp_path / "runs" / "ft"
    hf_model = make_hf_model(hf_dir, "qwen3", seed=3, head_dim=24, tie_word_embeddings=True)
    probe = resolve(preset="finetune-hf", overrides=[
        "--model.family=qwen3", "--model.d_model=64", "--model.n_layers=2", "--model.n_heads=4",
        "--model.n_kv_heads=2", "--model.head_dim=24", "--model.mlp_hidden_size=160", "--model.qk_norm=true",
        "--model.tie_embeddings=true", *RUN])
    _pretrain_with_transformers(hf_model, probe, steps=30)
    hf_model.save_pretrained(str(hf_dir))

    assert main_convert(["from-hf", str(hf_dir), str(converted)]) == 0
    cfg = resolve(config_file=str(converted / "config.toml"), overrides=RUN)
    assert cfg.model.family == "qwen3" and cfg.trainer.load_path == str(converted)
    hf_loss, fresh_loss = _first_batch_losses(cfg, hf_model)

    capsys.readouterr()
    code = main(["ft", "--config", str(converted / "config.toml"), "--run-dir", str(run_dir), *RUN])
    out, err = capsys.readouterr()
    assert code == 0, err[-2000:]
    losses = [json.loads(line)["loss"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert len(losses) == STEPS
    assert abs(losses[0] - hf_loss) < 1e-4, (losses[0], hf_loss)  # step 1 runs the converted weights
    assert fresh_loss - hf_loss > 1.0, (fresh_loss, hf_loss)
    assert max(losses) < fresh_loss - 1.0, losses
