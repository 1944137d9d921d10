"""The mixture-of-experts feed-forward (engine/nn/moe.py): grouped GEMMs against the loop
reference, the load-balancing loss against a skewed router, the parameter / FLOP arithmetic the
app uses against real tensors, and the router metrics of a real run."""

from __future__ import annotations

import pytest
import torch

from engine.config import ModelConfig, validate_experiment
from engine.config.moe import MoEConfig
from engine.nn.moe import MoE
from engine.nn.transformer import build_model, materialize

from tiny_run import keys, metrics, run, small_config

MOE = {"num_experts": 4, "top_k": 2, "hidden_size": 32, "num_shared_experts": 1, "dense_layers": [0]}


def _model(implementation: str, gating: str = "softmax"):
    cfg = ModelConfig(d_model=64, n_layers=3, n_heads=4, vocab_size=384,
                      moe={**MOE, "implementation": implementation, "gating": gating, "normalize_top_k": True})
    return materialize(build_model(cfg), torch.device("cpu"), seed=3)


@pytest.mark.parametrize("gating", ["softmax", "sigmoid"])
def test_grouped_gemm_equals_loop(gating):
    grouped, loop = _model("grouped", gating), _model("loop", gating)
    ids = torch.randint(0, 384, (3, 24), generator=torch.Generator().manual_seed(0))
    labels = ids.roll(-1, 1)
    out = {}
    for name, model in (("grouped", grouped), ("loop", loop)):
        objective, ce, _ = model(ids, labels=labels)
        objective.backward()
        out[name] = (objective.detach(), {n: p.grad for n, p in model.named_parameters()})
    assert out["grouped"][0] == pytest.approx(out["loop"][0].item(), rel=1e-6)
    for name, grad in out["grouped"][1].items():
        torch.testing.assert_close(grad, out["loop"][1][name], rtol=1e-5, atol=1e-6, msg=name)
    expert_grad = out["grouped"][1]["blocks.1.mlp.experts.w1"]
    assert (expert_grad.flatten(1).abs().sum(1) > 0).all()  # every expert took tokens and learned


def test_grouped_gemm_in_bfloat16_matches_loop():
    torch.manual_seed(0)
    cfg = MoEConfig(num_experts=4, top_k=2, hidden_size=64)
    grouped = MoE(64, cfg).to(torch.bfloat16)
    for p in grouped.parameters():
        torch.nn.init.normal_(p, 0, 0.05)
    loop = MoE(64, cfg.model_copy(update={"implementation": "loop"})).to(torch.bfloat16)
    loop.load_state_dict(grouped.state_dict())
    x = torch.randn(2, 40, 64, dtype=torch.bfloat16)
    torch.testing.assert_close(grouped(x), loop(x))


def test_load_balancing_loss_evens_out_a_skewed_router():
    torch.manual_seed(0)
    cfg = MoEConfig(num_experts=8, top_k=2, hidden_size=32, aux_loss_weight=1.0, z_loss_weight=None)
    moe = MoE(32, cfg)
    with torch.no_grad():
        for p in moe.parameters():
            p.normal_(0, 0.02)
        moe.router.weight[0] += 0.1  # every token's inputs share a direction: all pick expert 0
    x = torch.randn(512, 32) + 1.0

    def imbalance():
        with torch.no_grad():
            moe(x)
        load = moe.tokens_per_expert.float()
        return (load.max() / load.mean()).item(), moe.lb_loss.item()

    skew, lb_before = imbalance()
    assert skew == pytest.approx(4.0)  # expert 0 takes one of every token's 2 slots: 8 / 2
    optimizer = torch.optim.Adam(moe.router.parameters(), lr=1e-2)
    for _ in range(100):
        moe(x)
        moe.aux_loss().backward()
        optimizer.step()
        optimizer.zero_grad()
    after, lb_after = imbalance()
    assert after < 1.3 and lb_after < 1.2 < lb_before


def test_parameter_and_flop_arithmetic_matches_the_tensors():
    model = _model("grouped")
    cfg = model.config
    assert model.num_params() == cfg.num_params()
    assert model.num_matmul_params() == cfg.num_matmul_params()
    assert model.num_flops_per_token(128) == cfg.num_flops_per_token(128)
    experts = sum(p.numel() for n, p in model.named_parameters() if ".experts." in n)
    assert experts == cfg.num_expert_params()
    # one token uses top_k = 2 of the 4 experts in each of the 2 MoE blocks
    assert cfg.num_params() - cfg.num_active_params() == experts // 2
    assert isinstance(model.blocks["0"].mlp, torch.nn.Module) and not isinstance(model.blocks["0"].mlp, MoE)


@pytest.mark.parametrize("moe,field,needle", [
    ({"num_experts": 4, "top_k": 5}, "model.moe.top_k", "exceeds num_experts"),
    ({"hidden_size": 36}, "model.moe.hidden_size", "multiple of 8"),
    ({"dense_layers": [7]}, "model", "past n_layers"),
])
def test_moe_config_mistakes_name_the_field(moe, field, needle):
    cfg, issues = validate_experiment({"model": {"moe": moe}})
    assert cfg is None and len(issues) == 1
    assert issues[0].paths == (field,) and needle in issues[0].message


def test_tiny_moe_run_logs_router_health(tmp_path):
    cfg = small_config("--model.n_layers=2", "--model.moe.num_experts=4", "--model.moe.top_k=2",
                       "--model.moe.hidden_size=32", "--model.moe.dense_layers=[0]", steps=3)
    assert run(cfg, tmp_path / "run") == 0
    records = metrics(tmp_path / "run")
    assert {"moe/lb_loss", "moe/z_loss", "moe/load/1", "moe/imbalance/1"} <= keys(records)
    assert "moe/load/0" not in keys(records)  # block 0 is dense
    last = records[-1]
    load = last["moe/load/1"]
    tokens = cfg.data_loader.global_batch_size
    assert len(load) == 4 and sum(load) == tokens * 2  # every token counted in both of its slots
    assert last["moe/imbalance/1"] == pytest.approx(max(load) / (sum(load) / 4))
    assert 0 < last["moe/lb_loss"] < 4 and last["moe/z_loss"] > 0


def test_active_flops_per_token_equal_torchs_flop_counter():
    """The reference loop runs each token through exactly its top_k experts: torch's FLOP counter
    over forward + backward equals num_flops_per_token (router + k experts + shared expert +
    attention with full T x T scores), i.e. MFU counts the active weights."""
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode

    model = _model("loop")
    seq = 16
    ids = torch.randint(0, 384, (2, seq), generator=torch.Generator().manual_seed(0))
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        model(ids).float().sum().backward()
    per_token = counter.get_total_flops() / ids.numel()
    assert per_token == model.config.num_flops_per_token(seq) == model.num_flops_per_token(seq)
