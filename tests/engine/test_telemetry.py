"""Telemetry on a CPU run: the rank's CPU and resident memory in the logged records (no GPU
keys without CUDA); the monitor line's text for a GPU sample and a CPU one."""

from __future__ import annotations

from collections import deque

import tiny_run
from olmo_tui.app.widgets.telemetry import sparkline, telemetry_text


def test_cpu_run_records_cpu_and_memory(tmp_path):
    # A long interval: the first sample (CPU since the process started, never a ~0 s span's 0%)
    # is the only one of this short run (CI saw 0.0 when the first sample measured from itself).
    cfg = tiny_run.small_config("--trainer.callbacks.telemetry.interval_s=60", "--trainer.metrics_collect_interval=2",
                                steps=6)
    assert tiny_run.run(cfg, tmp_path / "run") == 0
    records = tiny_run.metrics(tmp_path / "run")
    last = records[-1]
    assert last["sys/cpu_pct"] > 0 and 0.05 < last["sys/rss_gib"] < 64  # torch alone holds > 50 MiB
    assert not [k for r in records for k in r if k.startswith("sys/gpu")]


def test_monitor_line_text():
    gpu = {"sys/gpu0/util_pct": 97.0, "sys/gpu0/mem_gib": 71.25, "sys/gpu0/power_w": 650.0, "sys/gpu0/temp_c": 68.0,
           "sys/gpu1/util_pct": 0.0, "sys/cpu_pct": 100.0}
    text = telemetry_text(gpu, {"gpu0": deque([0.0, 50.0, 100.0])})
    assert text == "GPU0  97% ▁▅█ 71.2G 650W 68°C  │  GPU1   0% "
    cpu = telemetry_text({"sys/cpu_pct": 180.0, "sys/rss_gib": 1.234}, {"cpu": deque([90.0, 180.0])})
    assert cpu == "CPU 180% ▅█  RSS 1.23 GiB"
    assert sparkline([0, 100]) == "▁█"
