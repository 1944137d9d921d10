"""The estimates of an MoE config (olmo_tui/core/config/estimates.py): active parameters, memory
per rank with the experts sharded by expert parallelism, the EP remedy and the OOM advice."""

from __future__ import annotations

import pytest

from engine.config import resolve
from engine.oom import oom_advice
from olmo_tui.core.config import estimates as est

GIB = 1024**3


def test_active_parameters_and_flops_count_the_routed_experts_only():
    cfg = resolve("olmoe-1b-7b")
    result = est.estimate(cfg)
    m = cfg.model
    expert = 3 * m.d_model * m.moe.hidden_size
    unused = m.n_layers * (m.moe.num_experts - m.moe.top_k) * expert  # 56 of 64 experts per block
    assert result.params - result.active_params == unused
    assert 1.2e9 < result.active_params < 1.35e9 and 6.8e9 < result.params < 7.0e9  # OLMoE's 1.3B / 6.9B
    dense_flops = 6 * (m.num_params() - m.num_embedding_params() - m.d_model * (1 + 2 * m.n_layers))
    assert result.flops_per_token < dense_flops / 3  # far below what all 6.9B weights would cost
    assert est.estimate(resolve("tiny-cpu")).active_params is None


def test_expert_parallelism_shrinks_the_gathered_block_by_the_experts_share():
    plain = est.memory_estimate(resolve("olmoe-1b-7b"))
    ep = est.memory_estimate(resolve("olmoe-1b-7b", overrides=["--train_module.ep_config.degree=8"]))
    cfg = resolve("olmoe-1b-7b")
    m, compute = cfg.model, 2  # bf16 gathers
    experts = m.moe.num_experts * 3 * m.d_model * m.moe.hidden_size
    assert plain.gathered - ep.gathered == pytest.approx(2 * experts * (1 - 1 / 8) * compute)
    # FSDP already shards every weight over the 8 ranks: EP does not change the sharded state
    assert ep.weights == plain.weights and ep.optimizer == plain.optimizer
    assert ep.total < plain.total


def test_tensor_parallelism_does_not_split_moe_weights():
    base = ["--launch.nproc_per_node=2", "--data_loader.global_batch_size=32768", "--train_module.dp_config=null"]
    one = est.memory_estimate(resolve("olmoe-1b-7b", overrides=base))
    tp = est.memory_estimate(resolve("olmoe-1b-7b", overrides=[*base, "--train_module.tp_config.degree=2"]))
    m = resolve("olmoe-1b-7b").model
    moe = m.n_layers * (m.moe.num_experts * 3 * m.d_model * m.moe.hidden_size + m.d_model * m.moe.num_experts)
    rest = m.num_params() - moe
    assert one.weights - tp.weights == pytest.approx(rest / 2 * 4)  # only the non-MoE half moves


def test_over_memory_moe_is_offered_expert_parallelism_and_the_oom_advice_names_it():
    cfg = resolve("olmoe-1b-7b", overrides=["--data_loader.global_batch_size=262144",
                                            "--train_module.rank_microbatch_size=32768"])
    result = est.estimate(cfg)
    assert result.over_memory
    remedy = next(r for r in result.remedies if "EP" in r.title)
    assert remedy.changes["train_module.ep_config"] == {"degree": 8}
    assert remedy.total_bytes < result.memory.total
    advice = oom_advice(cfg)
    assert "--train_module.ep_config.degree=N" in advice and "64 experts" in advice
    assert "ep_config" not in oom_advice(resolve("olmo2-1b"))
