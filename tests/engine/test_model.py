"""The transformer: parameter names and counts (against ModelConfig's arithmetic for every
preset), causality, the two block layouts, GQA, and the deterministic init."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from engine.config import ModelConfig, list_presets, resolve
from engine.nn.transformer import build_model, materialize

TINY = dict(d_model=64, n_layers=2, n_heads=4, vocab_size=128)


def tiny(**kw) -> ModelConfig:
    return ModelConfig(**{**TINY, **kw})


def built(cfg: ModelConfig, seed: int = 0):
    return materialize(build_model(cfg), torch.device("cpu"), seed)


@pytest.mark.parametrize("preset", [ref.name for ref in list_presets()])
def test_counts_match_config_arithmetic_for_every_preset(preset):
    cfg = resolve(preset=preset).model
    model = build_model(cfg, init_device="meta")  # meta: even 70B costs no memory
    assert model.num_params() == cfg.num_params()
    assert model.num_non_embedding_params() == cfg.num_non_embedding_params()
    for seq in (128, 4096):
        assert model.num_flops_per_token(seq) == cfg.num_flops_per_token(seq)


def test_parameter_names_follow_the_contract():
    names = {n for n, _ in built(tiny(family="olmo2", qk_norm=True, n_kv_heads=2)).named_parameters()}
    per_block = {"attention.w_q", "attention.w_k", "attention.w_v", "attention.w_out", "attention.q_norm",
                 "attention.k_norm", "attention_norm", "mlp.w1", "mlp.w3", "mlp.w2", "mlp_norm"}
    expected = {"embeddings.weight", "norm.weight", "lm_head.weight"}
    expected |= {f"blocks.{i}.{p}.weight" for i in range(2) for p in per_block}
    assert names == expected


def test_tied_embeddings_share_one_parameter():
    model = built(tiny(tie_embeddings=True))
    assert model.lm_head.weight is model.embeddings.weight
    assert "lm_head.weight" not in dict(model.named_parameters())


@pytest.mark.parametrize("family", ["llama", "olmo2"])
def test_causal_future_tokens_do_not_change_past_logits(family):
    model = built(tiny(family=family, qk_norm=family == "olmo2", n_kv_heads=2))
    ids = torch.randint(0, 128, (2, 16))
    changed = ids.clone()
    changed[:, 10:] = torch.randint(0, 128, (2, 6))
    with torch.no_grad():
        a, b = model(ids), model(changed)
    assert torch.equal(a[:, :10], b[:, :10])
    assert not torch.allclose(a[:, 10:], b[:, 10:])


def reference_forward(model, ids):
    """A from-scratch re-statement of the architecture (explicit masks and repeated KV heads)."""
    cfg = model.config
    T = ids.shape[1]
    pos = torch.arange(T, dtype=torch.float64)
    inv = 1.0 / cfg.rope_theta ** (torch.arange(0, cfg.head_size, 2, dtype=torch.float64) / cfg.head_size)
    ang = torch.outer(pos, inv)
    cos, sin = torch.cat([ang, ang], -1).cos(), torch.cat([ang, ang], -1).sin()

    def rms(x, w):
        return x / torch.sqrt(x.pow(2).mean(-1, keepdim=True) + cfg.norm_eps) * w.double()

    def rope(x):  # (B, H, T, hd)
        x1, x2 = x[..., : cfg.head_size // 2], x[..., cfg.head_size // 2:]
        return x * cos + torch.cat([-x2, x1], -1) * sin

    def attn(blk, x):
        B = x.shape[0]
        q, k, v = (x @ getattr(blk.attention, n).weight.double().T for n in ("w_q", "w_k", "w_v"))
        if cfg.qk_norm:
            q, k = rms(q, blk.attention.q_norm.weight), rms(k, blk.attention.k_norm.weight)
        q = q.view(B, T, cfg.n_heads, -1).transpose(1, 2)
        k = k.view(B, T, cfg.kv_heads, -1).transpose(1, 2).repeat_interleave(cfg.n_heads // cfg.kv_heads, 1)
        v = v.view(B, T, cfg.kv_heads, -1).transpose(1, 2).repeat_interleave(cfg.n_heads // cfg.kv_heads, 1)
        scores = rope(q) @ rope(k).transpose(-1, -2) / math.sqrt(cfg.head_size)
        scores = scores.masked_fill(torch.ones(T, T, dtype=torch.bool).triu(1), float("-inf"))
        out = (scores.softmax(-1) @ v).transpose(1, 2).reshape(B, T, -1)
        return out @ blk.attention.w_out.weight.double().T

    def mlp(blk, x):
        m = blk.mlp
        return (F.silu(x @ m.w1.weight.double().T) * (x @ m.w3.weight.double().T)) @ m.w2.weight.double().T

    h = model.embeddings.weight.double()[ids]
    for blk in model.blocks.values():
        if cfg.family == "olmo2":
            h = h + rms(attn(blk, h), blk.attention_norm.weight)
            h = h + rms(mlp(blk, h), blk.mlp_norm.weight)
        else:
            h = h + attn(blk, rms(h, blk.attention_norm.weight))
            h = h + mlp(blk, rms(h, blk.mlp_norm.weight))
    return rms(h, model.norm.weight) @ model.lm_head.weight.double().T


@pytest.mark.parametrize("family,kv", [("llama", 4), ("llama", 2), ("olmo2", 4), ("olmo2", 1)])
def test_forward_matches_a_float64_restatement(family, kv):
    model = built(tiny(family=family, qk_norm=family == "olmo2", n_kv_heads=kv))
    with torch.no_grad():  # non-trivial norm weights so the norm placement matters
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.uniform_(0.5, 1.5)
    ids = torch.randint(0, 128, (2, 12))
    with torch.no_grad():
        ours, ref = model(ids).double(), reference_forward(model, ids)
    # fp32 forward vs fp64 restatement: relative error far below 1e-4.
    assert (ours - ref).norm() / ref.norm() < 1e-5


def test_loss_sums_match_torch_cross_entropy():
    model = built(tiny())
    ids = torch.randint(0, 128, (2, 12))
    labels = ids.roll(-1, 1)
    labels[:, -1] = -100
    labels[0, 3] = -100
    with torch.no_grad():
        _, ce_sum, z_sum = model(ids, labels=labels, z_loss_multiplier=1e-2)
        logits = model(ids).flatten(0, 1)
    expected = F.cross_entropy(logits, labels.flatten(), ignore_index=-100, reduction="sum")
    keep = labels.flatten() != -100
    assert torch.allclose(ce_sum, expected, rtol=1e-5)
    assert torch.allclose(z_sum, logits.logsumexp(-1)[keep].square().sum(), rtol=1e-5)


def test_init_is_deterministic_documented_and_seed_dependent():
    cfg = tiny(n_layers=8, d_model=128)
    a, b, c = built(cfg, 7), built(cfg, 7), built(cfg, 8)
    for (name, pa), pb, pc in zip(a.named_parameters(), b.parameters(), c.parameters(), strict=True):
        assert torch.equal(pa, pb), name
        if not name.endswith("norm.weight"):
            assert not torch.equal(pa, pc), name
    std, out_std = cfg.init_std, cfg.init_std / math.sqrt(2 * cfg.n_layers)
    w_q = torch.cat([blk.attention.w_q.weight.flatten() for blk in a.blocks.values()])
    w2 = torch.cat([blk.mlp.w2.weight.flatten() for blk in a.blocks.values()])
    assert abs(w_q.std().item() / std - 1) < 0.05  # truncation at 3 std lowers std by ~1.3%
    assert abs(w2.std().item() / out_std - 1) < 0.05
    assert w_q.abs().max() <= 3 * std
    assert all(torch.all(p == 1) for n, p in a.named_parameters() if n.endswith("norm.weight"))


def test_init_does_not_depend_on_parameter_order_or_depth():
    # The same parameter name gets the same values whatever else the model holds.
    two, four = built(tiny(n_layers=2)), built(tiny(n_layers=4))
    assert torch.equal(two.blocks["1"].mlp.w1.weight, four.blocks["1"].mlp.w1.weight)


@pytest.mark.parametrize("z_mult", [None, 1e-2])
def test_chunked_head_loss_matches_the_plain_path(monkeypatch, z_mult):
    import engine.nn.fused_loss as fused

    monkeypatch.setattr(fused, "CHUNK_ELEMENTS", 5 * 128)  # 5 tokens per chunk: 24 tokens -> 5 chunks
    ids = torch.randint(0, 128, (2, 12))
    labels = ids.roll(-1, 1)
    labels[:, -1] = -100
    labels[1, :4] = -100
    results = []
    for fused_loss in (False, True):
        model = built(tiny())
        model.fused_loss = fused_loss
        objective, ce, z = model(ids, labels=labels, z_loss_multiplier=z_mult)
        objective.backward()
        results.append((objective.detach(), ce, z, {n: p.grad for n, p in model.named_parameters()}))
    (o1, c1, z1, g1), (o2, c2, z2, g2) = results
    assert torch.allclose(o1, o2, rtol=1e-6) and torch.allclose(c1, c2, rtol=1e-6)
    assert (z1 is None) == (z2 is None) and (z1 is None or torch.allclose(z1, z2, rtol=1e-6))
    for name in g1:  # fp32, summed in another order: relative error ~1e-7
        assert (g1[name] - g2[name]).norm() <= 1e-5 * g1[name].norm(), name
