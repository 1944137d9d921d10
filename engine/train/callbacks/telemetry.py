"""Node telemetry at a low rate: per-GPU utilisation, memory, power and temperature through
NVML (nvidia-ml-py, imported only when a CUDA run starts; missing = no GPU keys), and this
rank's CPU use and resident memory (from /proc, Linux) on every run.

Global rank 0 samples (its node's GPUs; other nodes' are not sampled), in a daemon thread
every `interval_s`, so a step never waits on NVML; post_step adds the newest sample to
the step's metrics, so logged records (metrics.jsonl, the [metrics] lines of a Beaker or SLURM
log) carry it:

    sys/gpu<i>/util_pct   GPU i's utilisation over NVML's last sample period (%)
    sys/gpu<i>/mem_gib    memory in use on GPU i (all processes, GiB)
    sys/gpu<i>/power_w    power draw (W)
    sys/gpu<i>/temp_c     temperature (C)
    sys/cpu_pct           this rank's CPU time over wall time since the previous sample (%;
                          100 = one core busy)
    sys/rss_gib           this rank's resident memory (GiB)
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any, Dict, List, Optional

from engine.config.trainer import TelemetryConfig

from ..callback import Callback

GIB = float(1 << 30)


def nvml_handles(device_type: str) -> List[Any]:
    """NVML device handles of this node's GPUs; [] on CPU or without nvidia-ml-py / a driver."""
    if device_type != "cuda":
        return []
    try:
        import pynvml  # nvidia-ml-py: the optional `telemetry` extra

        pynvml.nvmlInit()
        return [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(pynvml.nvmlDeviceGetCount())]
    except Exception:  # not installed, no driver, or NVML refused: no GPU keys, never a failed run
        return []


def gpu_sample(handles: List[Any]) -> Dict[str, float]:
    import pynvml

    out: Dict[str, float] = {}
    for i, handle in enumerate(handles):
        try:
            out[f"sys/gpu{i}/util_pct"] = float(pynvml.nvmlDeviceGetUtilizationRates(handle).gpu)
            out[f"sys/gpu{i}/mem_gib"] = round(pynvml.nvmlDeviceGetMemoryInfo(handle).used / GIB, 3)
            out[f"sys/gpu{i}/power_w"] = round(pynvml.nvmlDeviceGetPowerUsage(handle) / 1000.0, 1)
            out[f"sys/gpu{i}/temp_c"] = float(pynvml.nvmlDeviceGetTemperature(handle, pynvml.NVML_TEMPERATURE_GPU))
        except Exception:  # one query failing (e.g. power on some boards) drops that GPU's sample
            continue
    return out


def rss_gib() -> Optional[float]:
    """This process's resident memory from /proc/self/statm (None where there is no /proc)."""
    try:
        with open("/proc/self/statm") as f:
            pages = int(f.read().split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return round(pages * os.sysconf("SC_PAGE_SIZE") / GIB, 3)


def process_age_s() -> float:
    """Seconds since this process started (Linux /proc; 0 where unknown)."""
    try:
        with open("/proc/self/stat") as f:
            start_ticks = int(f.read().rsplit(")", 1)[1].split()[19])  # field 22, starttime
        with open("/proc/uptime") as f:
            uptime = float(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 0.0
    return max(uptime - start_ticks / os.sysconf("SC_CLK_TCK"), 0.0)


class CpuMeter:
    """This process's CPU time over wall time between calls, in percent of one core. The first
    call measures from the process's start (a span of ~0 s would read 0%)."""

    def __init__(self) -> None:
        self._cpu, self._wall = 0.0, time.monotonic() - process_age_s()

    @staticmethod
    def _now():
        t = os.times()
        return t.user + t.system, time.monotonic()

    def sample(self) -> float:
        cpu, wall = self._now()
        pct = 100.0 * (cpu - self._cpu) / max(wall - self._wall, 1e-6)
        self._cpu, self._wall = cpu, wall
        return round(pct, 1)


class TelemetryCallback(Callback):
    name = "telemetry"
    priority = 6  # a producer (before the metrics writer and console logger)

    def __init__(self, config: TelemetryConfig):
        super().__init__()
        self.config = config
        self.latest: Dict[str, float] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None

    def pre_train(self) -> None:
        if not self.trainer.is_rank0:
            return
        handles = nvml_handles(self.trainer.device.type)
        self._thread = threading.Thread(target=self._sample_loop, args=(handles,), name="telemetry", daemon=True)
        self._thread.start()

    def _sample_loop(self, handles: List[Any]) -> None:
        cpu = CpuMeter()
        while True:
            sample = gpu_sample(handles) if handles else {}
            sample["sys/cpu_pct"] = cpu.sample()
            rss = rss_gib()
            if rss is not None:
                sample["sys/rss_gib"] = rss
            with self._lock:
                self.latest = sample
            if self._stop.wait(self.config.interval_s):
                return

    def post_step(self) -> None:
        with self._lock:
            sample = dict(self.latest)
        for name, value in sample.items():
            self.trainer.record_metric(name, value)

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
