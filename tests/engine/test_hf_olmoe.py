"""OLMoE (OlmoeForCausalLM) against the real transformers class: a tiny random OLMoE converts
both ways with the same logits as the dense families (max |diff| < 1e-4, fp32), the routing
decides the logits (a check below permutes the experts), and a run fine-tunes from the converted
checkpoint. Models the HF class cannot express are refused in one line before anything is written.
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

ATOL = 1e-4  # the dense families' tolerance (test_hf_families.py)
OLMOE = dict(num_experts=4, num_experts_per_tok=2, intermediate_size=32)


def _convert(*args) -> int:
    return main_convert([str(a) for a in args])


@pytest.mark.parametrize("norm_topk_prob", [False, True])
def test_olmoe_round_trip_matches_transformers_logits(tmp_path, norm_topk_prob):
    src, engine_dir, back = tmp_path / "hf", tmp_path / "engine", tmp_path / "hf-back"
    make_hf_model(src, "olmoe", **OLMOE, norm_topk_prob=norm_topk_prob)
    assert _convert("from-hf", src, engine_dir) == 0
    cfg = read_checkpoint_config(engine_dir).model
    assert cfg.family == "llama" and cfg.qk_norm and cfg.kv_heads == 2
    assert (cfg.moe.num_experts, cfg.moe.top_k, cfg.moe.hidden_size) == (4, 2, 32)
    assert cfg.moe.normalize_top_k is norm_topk_prob and cfg.moe.gating == "softmax"

    ids = random_ids(shape=(2, 24))
    reference = hf_logits(src, ids)
    assert reference.std() > 0.5  # widely spread logits: a wrong tensor cannot hide
    ours = engine_logits_like_the_trainer(engine_dir, cfg, ids)
    assert (ours - reference).abs().max().item() < ATOL
    loop = engine_logits_like_the_trainer(engine_dir, cfg.model_copy(update={
        "moe": cfg.moe.model_copy(update={"implementation": "loop"})}), ids)
    assert (loop - reference).abs().max().item() < ATOL
    top1 = engine_logits_like_the_trainer(engine_dir, cfg.model_copy(update={
        "moe": cfg.moe.model_copy(update={"top_k": 1})}), ids)
    assert (top1 - reference).abs().max().item() > 1e-2  # routing decides the logits

    assert _convert("to-hf", engine_dir, back) == 0
    config = json.loads((back / "config.json").read_text())
    assert config["model_type"] == "olmoe" and config["architectures"] == ["OlmoeForCausalLM"]
    assert config["num_experts"] == 4 and config["norm_topk_prob"] is norm_topk_prob
    returned = hf_logits(back, ids)
    assert (returned - reference).abs().max().item() < ATOL
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("override,field", [
    ("--model.moe.num_shared_experts=1", "model.moe.num_shared_experts"),
    ("--model.moe.gating=sigmoid", "model.moe.gating"),
])
def test_moe_without_an_hf_equivalent_is_refused_in_one_line(tmp_path, capsys, override, field):
    run_dir = tmp_path / "run"
    overrides = ["--model.n_layers=1", "--model.d_model=32", "--model.n_heads=2", "--model.qk_norm=true",
                 "--model.moe.num_experts=4", "--model.moe.hidden_size=32", "--dataset.kind=synthetic",
                 "--dataset.sequence_length=64", "--train_module.max_sequence_length=64",
                 "--train_module.rank_microbatch_size=128", "--data_loader.global_batch_size=128",
                 "--trainer.max_duration=1 steps", "--trainer.callbacks.lm_evaluator.enabled=false", override]
    assert main(["r", "--preset", "tiny-cpu", "--run-dir", str(run_dir), *overrides]) == 0
    capsys.readouterr()
    assert _convert("to-hf", run_dir, tmp_path / "out") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and field in err[0], err
    assert not (tmp_path / "out").exists()


RUN = ["--data_loader.global_batch_size=256", "--train_module.rank_microbatch_size=256",
       "--trainer.max_duration=6 steps", "--trainer.metrics_collect_interval=1",
       "--trainer.callbacks.lm_evaluator.enabled=false"]


@pytest.mark.slow  # pre-trains with transformers, converts and runs olmo-train (~25 s on 2 busy cores)
def test_finetune_hf_trains_from_a_converted_olmoe(tmp_path, capsys):
    hf_dir, converted, run_dir = tmp_path / "hf", tmp_path / "engine", tmp_path / "runs" / "ft"
    hf_model = make_hf_model(hf_dir, "olmoe", seed=3, **OLMOE)
    probe = resolve(preset="finetune-hf", overrides=[
        "--model.d_model=64", "--model.n_layers=2", "--model.n_heads=4", "--model.n_kv_heads=2",
        "--model.qk_norm=true", "--model.moe.num_experts=4", "--model.moe.top_k=2", "--model.moe.hidden_size=32",
        *RUN])
    _pretrain_with_transformers(hf_model, probe, steps=30)
    hf_model.save_pretrained(str(hf_dir))

    assert _convert("from-hf", hf_dir, converted) == 0
    cfg = resolve(config_file=str(converted / "config.toml"), overrides=RUN)
    assert cfg.model.moe is not None and cfg.trainer.load_path == str(converted)
    hf_loss, fresh_loss = _first_batch_losses(cfg, hf_model)

    capsys.readouterr()
    code = main(["ft", "--config", str(converted / "config.toml"), "--run-dir", str(run_dir), *RUN])
    out, err = capsys.readouterr()
    assert code == 0, err[-2000:]
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in records]
    assert abs(losses[0] - hf_loss) < 1e-4, (losses[0], hf_loss)  # step 1 runs the converted weights
    assert fresh_loss - hf_loss > 1.0, (fresh_loss, hf_loss)
    assert max(losses) < fresh_loss - 1.0, losses
    assert "moe/imbalance/1" in records[-1]
