"""The GPU memory monitor: the arithmetic over the allocator's counters, silence on CPU, and (on a
GPU) real values from a real run."""

from __future__ import annotations

import pytest

import tiny_run
from engine.config import resolve
from engine.train.callbacks.gpu_monitor import GIB, AllocRetryWatch, memory_metrics
from engine.train.callbacks.registry import build_callbacks

# The keys torch.cuda.memory_stats() reports (a subset), as a run near the limit of an 80 GiB card.
STATS = {"active_bytes.all.current": 30 * (1 << 30), "active_bytes.all.peak": 70 * (1 << 30),
         "reserved_bytes.all.current": 76 * (1 << 30), "num_alloc_retries": 5, "num_ooms": 0}
TOTAL = 80 * (1 << 30)


def test_memory_metrics_in_gib_and_percent_of_the_device():
    assert memory_metrics(STATS, TOTAL) == {
        "gpu/active_gib": 30.0, "gpu/reserved_gib": 76.0, "gpu/peak_gib": 70.0,
        "gpu/active_pct": 37.5, "gpu/reserved_pct": 95.0, "gpu/peak_pct": 87.5,
    }


def test_allocator_retries_are_counted_per_interval_and_named_in_the_warning():
    watch = AllocRetryWatch(STATS)
    assert watch.update(STATS) == 0  # nothing new since the start
    assert watch.update({**STATS, "num_alloc_retries": 8}) == 3
    assert watch.update({**STATS, "num_alloc_retries": 8}) == 0
    text = AllocRetryWatch.warning(3, rank=1, step=40, reserved_pct=95.0)
    assert text.startswith("warning: [rank 1] step 40: the CUDA allocator retried 3 allocation(s)")
    assert "95% reserved" in text and "expandable_segments:True" in text


def test_on_by_default_and_silent_on_cpu(tmp_path, capsys):
    assert "gpu_monitor" in {cb.name for cb in build_callbacks(resolve(preset="tiny-cpu"))}
    run_dir = tmp_path / "run"
    assert tiny_run.run(tiny_run.small_config("--trainer.metrics_collect_interval=1", steps=2), run_dir) == 0
    records = tiny_run.metrics(run_dir)
    assert len(records) == 2 and not {k for k in tiny_run.keys(records) if k.startswith("gpu/")}
    captured = capsys.readouterr()
    assert "gpu" not in (captured.out + captured.err).lower()


@pytest.mark.gpu
def test_real_gpu_run_reports_memory(tmp_path):
    import torch

    run_dir = tmp_path / "run"
    assert tiny_run.run(tiny_run.small_config("--trainer.metrics_collect_interval=1", steps=3), run_dir) == 0
    total_gib = torch.cuda.get_device_properties(0).total_memory / GIB
    for record in tiny_run.metrics(run_dir):
        assert 0 < record["gpu/active_gib"] <= record["gpu/peak_gib"] <= record["gpu/reserved_gib"] < total_gib
        assert record["gpu/reserved_pct"] == pytest.approx(100 * record["gpu/reserved_gib"] / total_gib, abs=0.01)
        assert record["gpu/alloc_retries"] == 0
