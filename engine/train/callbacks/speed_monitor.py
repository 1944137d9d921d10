"""Throughput: tokens/s per device, MFU, data-loading share and ETA.

MFU = FLOPs per token x tokens/s per device / the device's peak FLOP/s x 100. FLOPs per token
come from ModelConfig.num_flops_per_token (6 x matmul params + 12 x layers x heads x head_dim x
seq, derived there); the peak from engine.hardware's table, matched against
torch.cuda.get_device_name(). On CPU or an unknown accelerator MFU is None (null in
metrics.jsonl) rather than a made-up figure.

Timing: a step runs from pre_load_batch to this callback's post_step, minus time the trainer
marks as excluded (checkpoint saves, evals). The first `num_warmup_steps` steps of each process
(compilation, allocator warm-up, the first batch after a resume) are left out. Figures are
averages over the steps since the previous logged step. On GPU the host-device sync of a logging
step happens after post_step and is not counted: the CPU runs at most a few steps ahead of the
GPU, so this shifts figures by well under one step per interval.
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
        self._step_started = 0.0
        self._excluded_at_start = 0.0
        self._run_started: Optional[float] = None  # after warm-up: the ETA's clock
        self._run_started_step = 0
        self._run_excluded_at_start = 0.0
        self.peak_flops: Optional[float] = None
        self.flops_per_token = 0

    def _reset_interval(self) -> None:
        self._interval_s = 0.0
        self._interval_data_s = 0.0
        self._interval_tokens = 0
        self._interval_steps = 0

    def pre_train(self) -> None:
        trainer = self.trainer
        self.peak_flops = device_peak_flops(trainer.device)
        self.flops_per_token = trainer.cfg.model.num_flops_per_token(trainer.cfg.dataset.sequence_length)

    def pre_load_batch(self) -> None:
        self._step_started = time.perf_counter()
        self._excluded_at_start = self.trainer.excluded_time_s

    def post_step(self) -> None:
        trainer = self.trainer
        now = time.perf_counter()
        self._steps_this_process += 1
        if self._steps_this_process <= self.num_warmup_steps:
            return
        if self._run_started is None:  # ETA clock starts after warm-up
            self._run_started, self._run_started_step = now, trainer.global_step - 1
            self._run_excluded_at_start = self._excluded_at_start
        step_s = now - self._step_started - (trainer.excluded_time_s - self._excluded_at_start)
        self._interval_s += max(step_s, 1e-9)
        self._interval_data_s += trainer.last_data_time_s
        # Tokens a device processes: tensor-parallel ranks share one batch.
        self._interval_tokens += trainer.last_batch_tokens // trainer.cfg.tp_degree
        self._interval_steps += 1
        if not self._is_log_step():
            return
        tps = self._interval_tokens / self._interval_s
        trainer.record_metric("tps", tps)
        trainer.record_metric("tps_total", tps * trainer.world_size)
        trainer.record_metric("data_pct", 100.0 * self._interval_data_s / self._interval_s)
        trainer.record_metric("mfu", None if self.peak_flops is None
                              else 100.0 * self.flops_per_token * tps / self.peak_flops)
        done = trainer.global_step - self._run_started_step
        elapsed = now - self._run_started - (trainer.excluded_time_s - self._run_excluded_at_start)
        trainer.record_metric("eta_s", elapsed / done * (trainer.stop_step - trainer.global_step))
        self._reset_interval()

    def _is_log_step(self) -> bool:
        trainer = self.trainer
        step = trainer.global_step
        return step % trainer.metrics_collect_interval == 0 or step >= trainer.stop_step
