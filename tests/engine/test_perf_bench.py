"""The pieces of the issue-30 benchmarks that decide what docs/BENCHMARKS.md claims: the
ours/peer verdict over repeated runs (benchmarks/compare_peer.py), the profile split
(benchmarks/throughput.py), and the head + loss choice on CPU (engine/nn/fused_loss.py)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

import engine.nn.fused_loss as fused

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"


def _script(name):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _runs(*tps):
    return [{"tps_per_device": t, "peak_mem_gib": 10.0, "first_step_s": 5.0, "process_to_first_step_s": 9.0}
            for t in tps]


def test_a_ratio_inside_the_spread_is_parity_and_outside_it_a_lead_or_a_lag():
    summary = _script("compare_peer").spread_summary
    # ours 100..110 (10% spread), peer 100: ratio 1.05 is inside -> parity
    assert summary("x", _runs(100, 105, 110), _runs(100, 100, 100))["verdict"] == "parity"
    tight = summary("x", _runs(120, 121, 122), _runs(100, 101, 100))
    assert tight["verdict"] == "ahead" and tight["ratio_tps"] == pytest.approx(121 / 100)
    assert summary("x", _runs(90, 90), _runs(100, 101))["verdict"] == "behind"
    # a failed run (None) is left out, not counted as zero
    assert summary("x", [None, *_runs(100)], _runs(100))["runs"] == [1, 1]


def test_profile_split_attributes_kernels_under_head_loss_then_by_name():
    from torch.autograd import DeviceType

    def event(name, kernels=(), parent=None):
        return SimpleNamespace(name=name, device_type=DeviceType.CPU, cpu_parent=parent,
                               kernels=[SimpleNamespace(name=k, duration=d) for k, d in kernels])

    head = event("head_loss")
    mm_in_head = event("aten::mm", [("nvjet_sm90_tst_256x128", 30.0)], parent=event("x", parent=head))
    events = [head, mm_in_head,
              event("aten::mm", [("nvjet_sm90_tst_192x192", 20.0)]),
              event("flex", [("triton_tem_fused_flex_attention_backward", 7.0)]),
              event("sdpa", [("cudnn_generated_fort_native_sdpa_sm90_flash_bprop", 5.0)]),
              event("norm", [("triton_per_fused_rms_norm", 3.0)])]
    split = _script("throughput").split_kernel_time(SimpleNamespace(events=lambda: events))
    assert split == {"head_loss": 30.0, "attention": 12.0, "matmul": 20.0, "other": 3.0, "total": 65.0}


def test_the_liger_choice_falls_back_to_the_chunked_path_on_cpu(monkeypatch):
    monkeypatch.setattr(fused, "IMPL", "liger")  # liger-kernel is CUDA-only: CPU tensors take the chunked path
    h, w = torch.randn(6, 8, requires_grad=True), torch.randn(20, 8, requires_grad=True)
    labels = torch.tensor([1, 2, -100, 4, 5, 19])
    obj, ce, z = fused.linear_cross_entropy(h, w, labels, -100, None)
    expected = torch.nn.functional.cross_entropy(h @ w.t(), labels, ignore_index=-100, reduction="sum")
    assert torch.allclose(obj, expected, rtol=1e-5) and z is None
