"""Stability alerts: loss spikes, grad-norm spikes and non-finite values.

Each step's loss (already averaged over ranks by the TrainModule, so every rank decides alike)
is judged in post_train_batch, before the optimizer applies the update: a NaN/inf loss, or a
loss above the rolling window's mean by `loss_spike_sigma` standard deviations, is an alert.
The grad norm (train_module.max_grad_norm set) is judged in post_step, after the update: above
`grad_norm_spike_factor` x the window's median, or non-finite. Spikes stay out of the window.

An alert goes into the step's metrics record (logged at once, whatever the interval) as

    "alerts": [{"kind": "loss_spike", "action": "skip", "value": 41.2, "threshold": 4.9,
                "message": "loss 41.2 at step 57 is above 4.9 (mean 4.1 + 6 sigma of 20 steps)"}]

so metrics.jsonl, the log's [metrics] lines (Beaker), the monitor's banner and the notify
hook's `alert` event (the sweep worker reads metrics.jsonl) all see it. Kinds: loss_spike,
grad_norm_spike, non_finite. Actions: warn; skip (the update is not applied, the data counts as
trained on); stop (skip, a final checkpoint of the weights from before the spike, exit 1). A
non-finite loss with `stop` ends the run as before (no checkpoint of a diverged model).

Test hook: OLMO_TUI_TEST_LOSS_SPIKE="STEP[:FACTOR]" multiplies the loss of STEP by FACTOR
(default 10) before it is judged and recorded: the drill the tests use.
"""

from __future__ import annotations

import math
import os
import statistics
import sys
from collections import deque
from typing import Any, Deque, Dict, List, Optional, Tuple

import torch

from engine.config.trainer import StabilityMonitorConfig
from engine.run_dir import ALERTS_KEY

from ..callback import Callback

TEST_SPIKE_ENV = "OLMO_TUI_TEST_LOSS_SPIKE"


def injected_spike(value: Optional[str]) -> Optional[Tuple[int, float]]:
    """OLMO_TUI_TEST_LOSS_SPIKE's (step, factor), None when unset or malformed."""
    if not value:
        return None
    step, _, factor = value.partition(":")
    try:
        return int(step), float(factor or 10.0)
    except ValueError:
        return None


def loss_threshold(window: List[float], sigma: float) -> float:
    """The loss above which a step is a spike: mean + sigma x std (std at least 1% of the mean)."""
    mean = statistics.fmean(window)
    std = statistics.pstdev(window)
    return mean + sigma * max(std, 0.01 * abs(mean))


class StabilityMonitorCallback(Callback):
    name = "stability_monitor"
    priority = 20  # records its alerts before the speed monitor, writer and logger run

    def __init__(self, config: StabilityMonitorConfig):
        super().__init__()
        self.config = config
        self.losses: Deque[float] = deque(maxlen=config.window)
        self.grad_norms: Deque[float] = deque(maxlen=config.window)
        self._alerts: List[Dict[str, Any]] = []
        self._inject = injected_spike(os.environ.get(TEST_SPIKE_ENV))

    def _alert(self, kind: str, action: str, value: float, threshold: Optional[float], message: str) -> None:
        step = self.trainer.global_step + (0 if kind == "grad_norm_spike" else 1)  # post_train_batch: not counted yet
        text = f"{message} at step {step}"
        self._alerts.append({"kind": kind, "action": action, "value": value if math.isfinite(value) else None,
                             "threshold": threshold, "message": text})
        if self.trainer.is_rank0:
            print(f"alert: {kind} ({action}): {text}", file=sys.stderr, flush=True)
        if action == "stop" and kind != "non_finite":  # a NaN loss raises in the trainer (no checkpoint)
            self.trainer.request_stop(f"stopped by the stability monitor: {text} "
                                      "(trainer.callbacks.stability_monitor)")

    def post_train_batch(self) -> None:
        loss_t = self.trainer.train_metrics.get("ce_loss")
        if not isinstance(loss_t, torch.Tensor):
            return
        if self._inject and self._inject[0] == self.trainer.global_step + 1:
            loss_t = self.trainer.train_metrics["ce_loss"] = loss_t.detach() * self._inject[1]  # recorded too
        loss = float(loss_t)
        cfg = self.config
        if not math.isfinite(loss):
            self._alert("non_finite", cfg.on_non_finite, loss, None, f"training loss is {loss}")
            if cfg.on_non_finite == "skip":
                self.trainer.skip_update()
            return
        if len(self.losses) >= cfg.min_history:
            threshold = loss_threshold(list(self.losses), cfg.loss_spike_sigma)
            if loss > threshold:
                self._alert("loss_spike", cfg.on_loss_spike, loss, round(threshold, 4),
                            f"loss {loss:.4g} is above {threshold:.4g} (mean + {cfg.loss_spike_sigma:g} sigma "
                            f"of {len(self.losses)} steps)")
                if cfg.on_loss_spike != "warn":
                    self.trainer.skip_update()
                return  # a spike stays out of the window
        self.losses.append(loss)

    def post_step(self) -> None:
        self._judge_grad_norm()
        if self._alerts:
            self.trainer.record_metric(ALERTS_KEY, self._alerts, force_log=True)
            self._alerts = []

    def _judge_grad_norm(self) -> None:
        norm_t = self.trainer.step_metric("grad_norm")
        if norm_t is None or self.trainer.update_skipped:
            return
        norm = float(norm_t)
        cfg = self.config
        if not math.isfinite(norm):  # already applied: the next loss is NaN too, and on_non_finite acts
            self._alert("non_finite", "warn", norm, None, f"grad norm is {norm}")
            return
        if len(self.grad_norms) >= cfg.min_history:
            threshold = cfg.grad_norm_spike_factor * statistics.median(self.grad_norms)
            if norm > threshold:
                self._alert("grad_norm_spike", cfg.on_grad_norm_spike, norm, round(threshold, 4),
                            f"grad norm {norm:.4g} is above {threshold:.4g} ({cfg.grad_norm_spike_factor:g} x "
                            f"the median of {len(self.grad_norms)} steps)")
                return
        self.grad_norms.append(norm)

    def state_dict(self) -> Dict[str, Any]:
        return {"losses": list(self.losses), "grad_norms": list(self.grad_norms)}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        self.losses.extend(state.get("losses", []))
        self.grad_norms.extend(state.get("grad_norms", []))
