"""Throughput: tokens/s per device, MFU, data-loading share and ETA.

MFU = FLOPs per token x tokens/s per device / the device's peak FLOP/s x 100. FLOPs per token
come from ModelConfig.num_flops_per_token (6 x matmul params + 12 x layers x heads x head_dim x
seq, derived there); the peak from engine.hardware's table, matched against
torch.cuda.get_device_name(). On CPU or an unknown accelerator MFU is None (null in
metrics.jsonl) rather than a made-up figure.

Timing (honest on GPU): the clock runs continuously between synchronised marks. A mark is
taken after the last warm-up step and on every logging step, each right after
torch.cuda.synchronize(), so an interval is the wall time from one mark to the next: the GPU
work the CPU had queued ahead, the wait for it, the stop agreement, metric collection and
logging all fall inside some interval. Only time the trainer marks as excluded (checkpoint
saves, evals) is taken out. The sync costs nothing extra: the logging step's metric
collection syncs right after it anyway. The first `num_warmup_steps` steps of each process
(compilation, allocator warm-up, the first batch after a resume) are left out.
"""

from __future__ import annotations

import time
from typing import Optional

import torch

from engine.config.trainer import SpeedMonitorConfig
from engine.hardware import accelerator_for_device

from ..callback import Callback


def device_peak_flops(device: torch.device) -> Optional[float]:
    if device.type != "cuda" or not torch.cuda.is_available():
        return None
    accelerator = accelerator_for_device(torch.cuda.get_device_name(device))
    return accelerator.peak_bf16_flops if accelerator else None


class SpeedMonitorCallback(Callback):
    name = "speed_monitor"
    priority = 10

    def __init__(self, config: SpeedMonitorConfig):
        super().__init__()
        self.num_warmup_steps = config.num_warmup_steps
        self._steps_this_process = 0
        self._reset_interval()
        self._mark_s: Optional[float] = None
        self._mark_excluded_s = 0.0
        self._run_started: Optional[float] = None  # after warm-up: the ETA's clock
        self._run_started_step = 0
        self._run_excluded_at_start = 0.0
        self.peak_flops: Optional[float] = None
        self.flops_per_token = 0

    def _reset_interval(self) -> None:
        self._interval_data_s = 0.0
        self._interval_tokens = 0
        self._interval_steps = 0

    def _sync_mark(self) -> None:
        """Wait for the GPU, then start the next interval here."""
        trainer = self.trainer
        if trainer.device.type == "cuda":
            torch.cuda.synchronize(trainer.device)
        self._mark_s = time.perf_counter()
        self._mark_excluded_s = trainer.excluded_time_s
        self._reset_interval()

    def pre_train(self) -> None:
        trainer = self.trainer
        self.peak_flops = device_peak_flops(trainer.device)
        self.flops_per_token = trainer.cfg.model.num_flops_per_token(trainer.cfg.dataset.sequence_length)
        if self.num_warmup_steps == 0:
            self._sync_mark()
            self._run_started, self._run_started_step = self._mark_s, trainer.global_step
            self._run_excluded_at_start = self._mark_excluded_s

    def post_step(self) -> None:
        trainer = self.trainer
        self._steps_this_process += 1
        if self._steps_this_process <= self.num_warmup_steps:
            if self._steps_this_process == self.num_warmup_steps:  # the ETA and tps clocks start
                self._sync_mark()
                self._run_started, self._run_started_step = self._mark_s, trainer.global_step
                self._run_excluded_at_start = self._mark_excluded_s
            return
        self._interval_data_s += trainer.last_data_time_s
        # Tokens a device processes: tensor-parallel ranks share one batch.
        self._interval_tokens += trainer.last_batch_tokens // trainer.cfg.tp_degree
        self._interval_steps += 1
        if not self._is_log_step():
            return
        tokens, data_s = self._interval_tokens, self._interval_data_s
        started, excluded_before = self._mark_s, self._mark_excluded_s
        self._sync_mark()
        now = self._mark_s
        interval_s = max(now - started - (self._mark_excluded_s - excluded_before), 1e-9)
        tps = tokens / interval_s
        trainer.record_metric("tps", tps)
        trainer.record_metric("tps_total", tps * trainer.world_size)
        trainer.record_metric("data_pct", 100.0 * data_s / interval_s)
        trainer.record_metric("mfu", None if self.peak_flops is None
                              else 100.0 * self.flops_per_token * tps / self.peak_flops)
        done = trainer.global_step - self._run_started_step
        elapsed = now - self._run_started - (trainer.excluded_time_s - self._run_excluded_at_start)
        trainer.record_metric("eta_s", elapsed / done * (trainer.stop_step - trainer.global_step))

    def _is_log_step(self) -> bool:
        trainer = self.trainer
        step = trainer.global_step
        return step % trainer.metrics_collect_interval == 0 or step >= trainer.stop_step
