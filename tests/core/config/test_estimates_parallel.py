"""Per-rank memory under context and pipeline parallelism, and CP as the remedy when one sequence
does not fit (olmo_tui/core/config/estimates.py; the formulas are in its docstring)."""

from __future__ import annotations

import pytest

from engine.config import resolve
from engine.config.parallel import pipeline_ranks
from olmo_tui.core.config import estimates as est
from olmo_tui.core.config.estimates import GIB

LONG = "llama3-8b-256k"  # 262,144-token sequences, CP 8 on one node of 8 H100s


def block_bytes(cfg, memory):
    """Activations without the loss: tokens per rank x per-token bytes, linear in the tokens."""
    tokens = cfg.train_module.rank_microbatch_size / cfg.cp_degree
    return memory.activations - est.loss_bytes(cfg, tokens, 2)


def test_cp_splits_each_sequences_activations_and_shards_over_dp_x_cp():
    cp = resolve(LONG)
    no_cp = resolve(LONG, overrides=["--train_module.cp_config=null"])
    assert (cp.cp_degree, cp.dp_world_size, no_cp.dp_world_size) == (8, 1, 8)
    with_cp, without = est.memory_estimate(cp), est.memory_estimate(no_cp)
    assert est.shard_factor(cp) == est.shard_factor(no_cp) == 8  # FSDP over dp x cp = 8 either way
    assert with_cp.weights == pytest.approx(without.weights)
    assert block_bytes(no_cp, without) == pytest.approx(8 * block_bytes(cp, with_cp))


def test_cp_is_the_remedy_when_one_sequence_does_not_fit():
    cfg = resolve(LONG, overrides=["--train_module.cp_config=null"])
    result = est.estimate(cfg)
    assert result.over_memory and result.mesh == "dp8 x tp1 x cp1 x pp1"
    titles = [r.title for r in result.remedies]
    assert not any(t.startswith("micro-batch") for t in titles)  # already one sequence per rank
    cp = next(r for r in result.remedies if r.title.startswith("CP degree"))
    assert cp.fits and titles.index(cp.title) < [i for i, t in enumerate(titles) if t.startswith("TP degree")][0]
    degree = cp.changes["train_module.cp_config"]["degree"]
    applied = resolve(LONG, overrides=[f"--train_module.cp_config.degree={degree}"])
    assert est.memory_estimate(applied).total == pytest.approx(cp.total_bytes)
    assert cp.total_bytes <= 80 * GIB
    if degree > 2:  # the smallest degree that fits (at 2, the config without CP is the smaller one)
        smaller = resolve(LONG, overrides=[f"--train_module.cp_config.degree={degree // 2}"])
        assert est.memory_estimate(smaller).total > 80 * GIB


def test_the_long_context_preset_fits_as_its_comment_says():
    result = est.estimate(resolve(LONG))
    assert not result.over_memory and result.mesh == "dp1 x tp1 x cp8 x pp1"
    assert 30 * GIB < result.memory.total < 38 * GIB  # "about 34 GiB per GPU"


def pipeline(schedule, degree=2, world=2):
    return resolve("llama2-271m", overrides=[
        f"--train_module.pp_config={{degree: {degree}, schedule: {schedule}}}", f"--launch.nproc_per_node={world}",
        "--trainer.callbacks.downstream_evaluator.enabled=false", "--train_module.dp_config.name=fsdp"])


def test_pipeline_ranks_hold_the_model_between_them():
    """The ranks' weights add up to the whole model's; 1F1B's first rank keeps as many blocks'
    activations in flight as one process without PP; GPipe keeps every micro-batch's."""
    plain = resolve("llama2-271m", overrides=["--launch.nproc_per_node=1"])
    one_f = pipeline("1F1B")
    ranks = [est._rank_memory(one_f, *rank) for rank in pipeline_ranks(one_f)]
    assert sum(r.weights for r in ranks) == pytest.approx(est.memory_estimate(plain).weights)
    assert est.memory_estimate(one_f).total == max(r.total for r in ranks)
    assert pipeline_ranks(one_f)[0][3] == plain.model.n_layers
    gpipe = pipeline("gpipe")
    assert est.memory_estimate(gpipe).activations > est.memory_estimate(one_f).activations
    interleaved = pipeline("interleaved_1F1B")
    assert [held for held, *_ in pipeline_ranks(interleaved)] == [8, 8]
