"""GPU memory as the caching allocator sees it, on every logged step; silent on CPU.

Metrics (this rank's GPU; rank 0's values land in metrics.jsonl):

    gpu/active_gib     memory held by live tensors now
    gpu/reserved_gib   memory the allocator holds from the driver (active + cached free blocks);
                       this is what nvidia-smi shows, minus the CUDA context
    gpu/peak_gib       the largest active memory since the previous logged step (the peak of
                       the interval, usually reached in backward)
    gpu/active_pct, gpu/reserved_pct, gpu/peak_pct    the same as % of the device's memory
    gpu/alloc_retries  allocations in the interval that failed at first and succeeded only after
                       the allocator freed its cache and tried again

Allocator retries mean the run is at the edge of memory: each one flushes the cache and
synchronises the device, which slows steps, and the next bigger allocation may be an OOM. A
warning names them (on every rank, so it reaches the log even when rank 0 is fine). Reading
the allocator's counters is host-side bookkeeping: no device synchronisation.
"""

from __future__ import annotations

import sys
from typing import Any, Dict, Mapping, Optional

import torch

from engine.config.trainer import GPUMonitorConfig

from ..callback import Callback

GIB = float(1 << 30)


def memory_metrics(stats: Mapping[str, Any], total_bytes: int) -> Dict[str, float]:
    """torch.cuda.memory_stats() -> the gpu/* metrics (no retries; see AllocRetryWatch)."""
    active = stats.get("active_bytes.all.current", 0)
    reserved = stats.get("reserved_bytes.all.current", 0)
    peak = stats.get("active_bytes.all.peak", active)
    metrics = {"gpu/active_gib": active / GIB, "gpu/reserved_gib": reserved / GIB, "gpu/peak_gib": peak / GIB}
    for name, value in (("active", active), ("reserved", reserved), ("peak", peak)):
        metrics[f"gpu/{name}_pct"] = 100.0 * value / total_bytes if total_bytes else float("nan")
    return {k: round(v, 4) for k, v in metrics.items()}


class AllocRetryWatch:
    """Counts new allocator retries and OOMs between calls and words the warning."""

    def __init__(self, stats: Mapping[str, Any]):
        self.retries = int(stats.get("num_alloc_retries", 0))
        self.ooms = int(stats.get("num_ooms", 0))

    def update(self, stats: Mapping[str, Any]) -> int:
        """New retries since the last call."""
        retries = int(stats.get("num_alloc_retries", 0))
        new, self.retries = retries - self.retries, retries
        self.ooms = int(stats.get("num_ooms", 0))
        return new

    @staticmethod
    def warning(new_retries: int, rank: int, step: int, reserved_pct: float) -> str:
        return (f"warning: [rank {rank}] step {step}: the CUDA allocator retried {new_retries} allocation(s) "
                f"after freeing its cache (memory {reserved_pct:.0f}% reserved). Steps slow down and an "
                "out-of-memory error is close: try PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True "
                "(less fragmentation) or a smaller train_module.rank_microbatch_size.")


class GPUMonitorCallback(Callback):
    name = "gpu_monitor"
    priority = 5  # a metric producer: before the metrics writer and console logger

    def __init__(self, config: GPUMonitorConfig):
        super().__init__()
        self.config = config
        self._device: Optional[torch.device] = None
        self._total = 0
        self._retries: Optional[AllocRetryWatch] = None
        self._interval_retries = 0
        self._reserved_pct = 0.0

    def pre_train(self) -> None:
        device = self.trainer.device
        if device.type != "cuda" or not torch.cuda.is_available():
            return  # nothing to watch on CPU, and nothing printed about it
        self._device = device
        self._total = torch.cuda.get_device_properties(device).total_memory
        self._retries = AllocRetryWatch(torch.cuda.memory_stats(device))
        torch.cuda.reset_peak_memory_stats(device)

    def post_step(self) -> None:
        if self._device is None:
            return
        stats = torch.cuda.memory_stats(self._device)
        metrics = memory_metrics(stats, self._total)
        self._interval_retries += self._retries.update(stats)
        self._reserved_pct = metrics["gpu/reserved_pct"]
        for name, value in metrics.items():
            self.trainer.record_metric(name, value)
        self.trainer.record_metric("gpu/alloc_retries", self._interval_retries)

    def log_metrics(self, step: int, metrics: Dict[str, Any]) -> None:
        if self._device is None:
            return
        if self._interval_retries:  # one warning per interval, not one per step
            print(AllocRetryWatch.warning(self._interval_retries, self.trainer.rank, step, self._reserved_pct),
                  file=sys.stderr, flush=True)
        # The next interval's peak and retry count start now.
        torch.cuda.reset_peak_memory_stats(self._device)
        self._interval_retries = 0
