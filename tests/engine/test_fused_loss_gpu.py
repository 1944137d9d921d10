"""The head + loss implementations on the GPU (skipped without CUDA) against an fp64 reference
computed from the same bf16 inputs: the objective within bf16's rounding of the logits, both
gradients within the relative error bf16 matmuls give (docs/BENCHMARKS.md, "Head + loss").
The CPU test of the math (chunked vs the plain path, fp32) is in test_model.py."""

from __future__ import annotations

import importlib.util

import pytest
import torch

import engine.nn.fused_loss as fused

N, D, V = 3000, 256, 50_000


def _reference(h, w, labels, z_mult):
    h64 = h.double().requires_grad_(True)
    w64 = w.double().requires_grad_(True)
    logits = h64 @ w64.t()
    keep = labels != -100
    lse = logits.logsumexp(-1)
    target = logits.gather(-1, labels.masked_fill(~keep, 0).unsqueeze(-1)).squeeze(-1)
    ce = torch.where(keep, lse - target, 0.0).sum()
    z = torch.where(keep, lse.square(), 0.0).sum()
    obj = ce + (z_mult or 0.0) * z
    (obj / N).backward()
    return obj.detach(), ce.detach(), z.detach(), h64.grad, w64.grad


def _rel(a, b):
    return float((a.double() - b).norm() / b.norm())


@pytest.mark.gpu
@pytest.mark.parametrize("impl", ["chunked", "liger"])
@pytest.mark.parametrize("z_mult", [None, 1e-2])
def test_head_loss_matches_fp64_reference_on_gpu(monkeypatch, impl, z_mult):
    if impl == "liger" and importlib.util.find_spec("liger_kernel") is None:
        pytest.skip("liger-kernel not installed (the optional `liger` extra)")
    monkeypatch.setattr(fused, "IMPL", impl)
    monkeypatch.setattr(fused, "CHUNK_ELEMENTS", 700 * V)  # 700 tokens a chunk: 5 chunks, the last short
    gen = torch.Generator(device="cuda").manual_seed(torch.seed() % 2**31)  # fresh inputs every run
    h = torch.randn(N, D, device="cuda", generator=gen).bfloat16()
    w = (torch.randn(V, D, device="cuda", generator=gen) * 0.05).bfloat16()
    labels = torch.randint(0, V, (N,), device="cuda", generator=gen)
    labels[::13] = -100
    ref_obj, ref_ce, ref_z, ref_gh, ref_gw = _reference(h, w, labels, z_mult)

    hh, ww = h.clone().requires_grad_(True), w.clone().requires_grad_(True)
    obj, ce, z = fused.linear_cross_entropy(hh, ww, labels, -100, z_mult)
    (obj / N).backward()
    assert torch.isfinite(hh.grad).all() and torch.isfinite(ww.grad).all()
    assert hh.grad.dtype == torch.bfloat16 and ww.grad.dtype == torch.bfloat16
    assert _rel(obj, ref_obj) < 1e-3 and _rel(ce, ref_ce) < 1e-3
    assert (z is None) == (z_mult is None) and (z is None or _rel(z, ref_z) < 1e-2)
    assert _rel(hh.grad, ref_gh) < 1e-2, _rel(hh.grad, ref_gh)
    assert _rel(ww.grad, ref_gw) < 1e-2, _rel(ww.grad, ref_gw)
