"""The fit loop: fetch a batch, let the TrainModule step, let the callbacks do the rest.

Durations: `max_duration` sets `max_steps`, which the TrainModule's LR schedule is built on;
`hard_stop` only moves `stop_step` (where the loop ends) and never changes the schedule, so a
run stopped early has exactly the LRs of the full run up to that point.

Stopping: the signals in STOP_SIGNALS (SIGTERM, SIGINT, and SIGUSR1: SLURM's warning before a
time limit) set a flag; a single process stops after the current step. With several ranks, they
agree on stopping (a gloo all-reduce of the flag, a CPU barrier) only every
`trainer.cancel_check_interval` steps and on the last step, so the check costs nothing on the
other steps; every rank checks at the same global steps, so all ranks stop together at the first
check after any of them got the signal. Then post_train runs (the checkpointer writes a final
checkpoint) and fit() returns the signal number, which the entry turns into exit code
128 + signum (143 / 130 / 138). A SIGUSR1 that came during start-up (engine/stop_request.py)
counts as received at the first step. A second signal of the same kind falls back to Python's
default behaviour, so a stuck run can still be killed from the keyboard.

Batches: the loader's CPU batches go through DevicePrefetcher (engine/data/device_prefetch.py):
pinned, copied to the GPU on a side stream one step ahead. The loader position saved in a
checkpoint is the one that goes with the batch being trained on, not the prefetched one.

Metrics: the TrainModule's metric tensors stay on the device between logging steps (no host
sync per step); every `metrics_collect_interval` steps, on the last step and when a callback
records a metric with force_log=True, they are averaged across ranks, turned into floats,
checked (a non-finite loss raises NonFiniteLossError) and handed to every callback's
log_metrics as one record with the keys of docs/CONTRACTS.md.
"""

from __future__ import annotations

import math
import random
import signal
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple

import numpy as np
import torch
import torch.distributed as dist

from engine import stop_request
from engine.config import ExperimentConfig
from engine.data.device_prefetch import DevicePrefetcher

from .callback import Callback

# Signals that ask for a graceful stop (final checkpoint, exit 128 + signum). Add one here to
# give it the same treatment; the agreement takes the largest number any rank received.
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1)


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or infinite: the run cannot continue meaningfully."""


class AlertStop(RuntimeError):
    """A callback (the stability monitor) stopped the run after its final checkpoint."""


def _log0(trainer: "Trainer", message: str) -> None:
    if trainer.is_rank0:
        print(message, flush=True)


def rng_state() -> Dict[str, Any]:
    """Every RNG a step might draw from, as plain values and tensors (torch.load weights_only)."""
    np_state = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": [np_state[0], torch.from_numpy(np_state[1].copy()), *np_state[2:]],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Dict[str, Any]) -> None:
    random.setstate(state["python"])
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, keys.numpy(), pos, has_gauss, gauss))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])


def seed_all(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds every CUDA device


class Trainer:
    """Owns the loop, the step counters, metric collection and stopping; see module docstring.

    `train_module` (engine.train_module.TrainModule) needs: train_batch(batch) -> {"ce_loss",
    optionally "z_loss": device tensors}, optim_step() -> {"lr": float, optionally "grad_norm"}
    (it zeroes the gradients), eval_batch(batch) -> (loss sum, token count) summed over ranks,
    set_max_steps(n), state_dict() / load_state_dict(sd) (DCP-ready). `data_loader`
    (engine.data.loader.TrainLoader, or a mixture's MixtureLoader) needs: iteration yielding
    {"input_ids": (N, T), optionally "label_mask", "doc_ids"} per optimizer step (iterating again
    starts the next epoch), state_dict() / load_state_dict(sd), metrics(state) -> extra record keys.
    """

    def __init__(self, *, cfg: ExperimentConfig, train_module, data_loader, run_dir: Path,
                 save_folder: Path, callbacks: List[Callback], max_steps: int, stop_step: int,
                 rank: int = 0, world_size: int = 1, device: torch.device = torch.device("cpu"),
                 cpu_group=None, eval_data=None):
        self.cfg = cfg
        self.train_module = train_module
        self.data_loader = data_loader
        # LM evaluator: held-out set name ("" = the one unnamed set) -> a callable returning an
        # iterator of its batches; a bare callable is the unnamed set.
        self.eval_data = {"": eval_data} if callable(eval_data) else eval_data
        self.run_dir = Path(run_dir)
        self.save_folder = Path(save_folder)
        self.rank, self.world_size, self.device = rank, world_size, device
        self.cpu_group = cpu_group  # gloo group for the stop flag, so it never syncs the GPU
        self.max_steps = max_steps  # drives the LR schedule
        self.stop_step = stop_step  # where the loop ends (hard_stop <= max_duration)
        self.metrics_collect_interval = cfg.trainer.metrics_collect_interval
        self.cancel_check_interval = cfg.trainer.cancel_check_interval
        self.global_step = 0
        self.global_train_tokens = 0
        self.start_step = 0  # step this process started (or resumed) at
        self.loaded_from: Optional[Path] = None

        self._cancel_signal: Optional[int] = None
        self._old_handlers: Dict[int, Any] = {}
        self._step_metrics: Dict[str, Any] = {}
        self._force_log = False
        self._excluded_s = 0.0  # time spent in checkpoints/evals, left out of throughput
        self.last_data_time_s = 0.0
        self.last_batch_tokens = 0
        self._data_state: Optional[Dict[str, Any]] = None  # loader position of the batch in use
        # The step's TrainModule outputs (device tensors), readable from post_train_batch on.
        self.train_metrics: Dict[str, Any] = {}
        self._skip_update = False
        self._stop_reason: Optional[str] = None
        self._logged_loss: Optional[float] = None

        self.callbacks: Dict[str, Callback] = {}
        for callback in callbacks:
            if callback.name in self.callbacks:
                raise ValueError(f"two callbacks named {callback.name!r}")
            self.callbacks[callback.name] = callback
        # Higher priority first; sorted() is stable, so ties keep registration order.
        self._ordered = sorted(self.callbacks.values(), key=lambda cb: -cb.priority)
        for callback in self._ordered:
            callback.attach(self)
        self.train_module.set_max_steps(max_steps)
        for callback in self._ordered:
            callback.post_attach()

    def add_callback(self, callback: Callback) -> None:
        """Register one more callback after construction (benchmarks and embedding code)."""
        if callback.name in self.callbacks:
            raise ValueError(f"two callbacks named {callback.name!r}")
        self.callbacks[callback.name] = callback
        self._ordered = sorted(self.callbacks.values(), key=lambda cb: -cb.priority)
        callback.attach(self)
        callback.post_attach()

    # ---- properties used by callbacks ----------------------------------------------------
    @property
    def callbacks_in_order(self) -> List[Callback]:
        """Callbacks in the order hooks run (priority, higher first)."""
        return list(self._ordered)

    @property
    def is_rank0(self) -> bool:
        return self.rank == 0

    @property
    def tokens_per_step(self) -> int:
        return self.cfg.tokens_per_step

    @property
    def cancel_signal(self) -> Optional[int]:
        return self._cancel_signal

    @property
    def excluded_time_s(self) -> float:
        return self._excluded_s

    @contextmanager
    def excluded_time(self):
        """Wrap bookkeeping (saves, evals) so the speed monitor leaves it out of step time."""
        started = time.perf_counter()
        try:
            yield
        finally:
            self._excluded_s += time.perf_counter() - started

    def log(self, message: str) -> None:
        _log0(self, message)

    def record_metric(self, name: str, value: Any, force_log: bool = False) -> None:
        """Add a metric to the current step's record (tensor, float or None)."""
        self._step_metrics[name] = value
        self._force_log = self._force_log or force_log

    def step_metric(self, name: str) -> Any:
        """The value recorded for `name` this step (a device tensor, a float or None)."""
        return self._step_metrics.get(name)

    def skip_update(self) -> None:
        """From post_train_batch: do not apply this step's update (its data still counts as
        trained on). Every rank must decide alike (decide from all-reduced values)."""
        self._skip_update = True

    def request_stop(self, reason: str) -> None:
        """End the run after this step: its record is logged, post_train writes the final
        checkpoint, then fit raises AlertStop(reason) (exit 1). Every rank must call it alike."""
        self._stop_reason = reason
        self._force_log = True

    @property
    def update_skipped(self) -> bool:
        """Whether this step's update was skipped (valid from post_step on)."""
        return self._skip_update

    # ---- resumable state -----------------------------------------------------------------
    def state_dict(self) -> Dict[str, Any]:
        """This rank's trainer state (saved per rank beside the DCP shards)."""
        return {
            "global_step": self.global_step,
            "global_train_tokens": self.global_train_tokens,
            "max_steps": self.max_steps,
            "world_size": self.world_size,
            "data_loader": self._data_state if self._data_state is not None else self.data_loader.state_dict(),
            "rng": rng_state(),
            "callbacks": {name: cb.state_dict() for name, cb in self.callbacks.items()},
        }

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        self.global_step = int(state["global_step"])
        self.global_train_tokens = int(state["global_train_tokens"])
        self.data_loader.load_state_dict(state["data_loader"])
        self._data_state = None
        if state.get("world_size") == self.world_size:
            set_rng_state(state["rng"])
        else:
            self.log(f"world size changed ({state.get('world_size')} -> {self.world_size}): RNG state not restored")
        if state.get("max_steps") not in (None, self.max_steps):
            self.log(f"note: max_duration changed since the checkpoint ({state['max_steps']} -> "
                     f"{self.max_steps} steps): the LR schedule follows the new value")
        for name, cb_state in state.get("callbacks", {}).items():
            if name in self.callbacks:
                self.callbacks[name].load_state_dict(cb_state)

    def dcp_state(self) -> Dict[str, Any]:
        return self.train_module.state_dict()

    def after_checkpoint_loaded(self, path: Path) -> None:
        self.loaded_from = path
        for callback in self._ordered:
            callback.post_checkpoint_loaded(path)

    # ---- signals -------------------------------------------------------------------------
    def _on_signal(self, signum, frame) -> None:
        if self._cancel_signal == signum:  # second time: let the default behaviour kill us
            signal.signal(signum, self._old_handlers.get(signum, signal.SIG_DFL))
            signal.raise_signal(signum)
            return
        self._cancel_signal = signum
        _log0(self, f"{signal.Signals(signum).name} received: stopping after step {self._next_stop_check()} "
                    "with a final checkpoint (send it again to stop at once)")

    def _install_signal_handlers(self) -> None:
        for signum in STOP_SIGNALS:
            try:
                self._old_handlers[signum] = signal.signal(signum, self._on_signal)
            except ValueError:  # not the main thread (e.g. an embedding test harness)
                pass
        early = stop_request.take_pending()  # a stop signal during start-up (engine/stop_request.py)
        if early is not None and self._cancel_signal is None:
            self._on_signal(early, None)

    def _restore_signal_handlers(self) -> None:
        for signum, handler in self._old_handlers.items():
            signal.signal(signum, handler)
        self._old_handlers.clear()

    def _agrees_alone(self) -> bool:
        return self.world_size == 1 or not dist.is_initialized()

    def _is_stop_check_step(self) -> bool:
        step = self.global_step
        return self._agrees_alone() or step % self.cancel_check_interval == 0 or step >= self.stop_step

    def _next_stop_check(self) -> int:
        """The step after which a signal received now stops the run."""
        nxt = self.global_step + 1
        if self._agrees_alone():
            return nxt
        return min(-(-nxt // self.cancel_check_interval) * self.cancel_check_interval, max(self.stop_step, nxt))

    def _agreed_stop_signal(self) -> Optional[int]:
        """All ranks stop at the same step: the largest signal number any rank received."""
        if self.world_size == 1 or not dist.is_initialized():
            return self._cancel_signal
        flag = torch.tensor([self._cancel_signal or 0], dtype=torch.int64,
                            device="cpu" if self.cpu_group is not None else self.device)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX, group=self.cpu_group)
        value = int(flag.item())
        return value or None

    # ---- the loop ------------------------------------------------------------------------
    def _batches(self) -> Iterator[Tuple[Dict[str, Any], Dict[str, Any]]]:
        """(batch, the loader's state right after it), endlessly."""
        while True:  # epochs: the loader reshuffles each time it is iterated again
            yielded = False
            for batch in self.data_loader:
                yielded = True
                yield batch, self.data_loader.state_dict()
            if not yielded:
                raise RuntimeError("the data loader produced no batches")

    def _is_log_step(self) -> bool:
        step = self.global_step
        return self._force_log or step % self.metrics_collect_interval == 0 or step >= self.stop_step

    def _collect_metrics(self) -> Dict[str, Any]:
        """Turn this step's metric values into one contract record (all ranks take part)."""
        tensors = {k: v for k, v in self._step_metrics.items() if isinstance(v, torch.Tensor)}
        values: Dict[str, Any] = {k: v for k, v in self._step_metrics.items() if k not in tensors}
        if tensors:
            # One all-reduce for every metric; a vector metric (an MoE block's tokens per expert)
            # becomes a list of floats, a scalar a float.
            names = sorted(tensors)
            flat = [tensors[n].detach().float().reshape(-1) for n in names]
            stacked = torch.cat(flat)
            if self.world_size > 1 and dist.is_initialized():
                dist.all_reduce(stacked, op=dist.ReduceOp.SUM)
                stacked /= self.world_size
            numbers, at = stacked.cpu().tolist(), 0
            for name, part in zip(names, flat):
                n = part.numel()
                values[name] = numbers[at] if tensors[name].dim() == 0 or n == 1 else numbers[at:at + n]
                at += n
        self._logged_loss = values.get("loss")
        record = {"step": self.global_step, "time": time.time(), "total_steps": self.stop_step,
                  "tokens": self.global_train_tokens}
        # Non-finite values become null (strict JSON); a non-finite loss raises once logged.
        record.update({k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in values.items()})
        return record

    def _raise_if_diverged(self) -> None:
        loss = self._logged_loss
        if isinstance(loss, float) and not math.isfinite(loss) and not self._skip_update:
            raise NonFiniteLossError(
                f"training loss is {loss} at step {self.global_step}: lower train_module.optim.lr, set "
                "train_module.max_grad_norm, or resume from an earlier checkpoint")

    def check_loss_finite(self) -> None:
        """Sync the current loss now (used before writing a checkpoint)."""
        loss = self._step_metrics.get("loss")
        if self._skip_update:  # this step's loss never reached the weights
            return
        if isinstance(loss, torch.Tensor):
            value = loss.detach().float().clone()  # all_reduce works in place: keep the metric intact
            if self.world_size > 1 and dist.is_initialized():
                dist.all_reduce(value, op=dist.ReduceOp.SUM)
            if not math.isfinite(float(value)):
                raise NonFiniteLossError(f"training loss is {float(value)} at step {self.global_step}: "
                                         "not saving a checkpoint of a diverged model")

    def _train_step(self, batch: Dict[str, Any]) -> Optional[int]:
        """One optimizer step and its callbacks; returns the signal all ranks agreed to stop on."""
        for callback in self._ordered:
            callback.pre_step(batch)
        metrics = self.train_metrics = self.train_module.train_batch(batch)
        self._skip_update = False
        for callback in self._ordered:
            callback.post_train_batch()
        if self._skip_update:
            optim_metrics = self.train_module.skip_optim_step()
        else:
            optim_metrics = self.train_module.optim_step()
        self.global_step += 1
        self.global_train_tokens += self.tokens_per_step
        # Contract names (docs/CONTRACTS.md): the TrainModule's "ce_loss" is the record's "loss".
        self._step_metrics = {"loss" if name == "ce_loss" else name: value for name, value in metrics.items()}
        self._force_log = self._stop_reason is not None
        for name, value in optim_metrics.items():
            self.record_metric(name, value)
        if self._data_state is not None:  # a mixture's tokens per source (data/<name>/tokens)
            for name, value in self.data_loader.metrics(self._data_state).items():
                self.record_metric(name, value)
        for callback in self._ordered:
            callback.post_step()
        # Ranks agree on stopping (at the same steps) before deciding to log, so they all log
        # (and reduce) together; the last step before a graceful stop is always logged.
        stop_signal = self._agreed_stop_signal() if self._is_stop_check_step() else None
        if self._is_log_step() or stop_signal is not None:
            record = self._collect_metrics()
            for callback in self._ordered:
                callback.log_metrics(self.global_step, record)
            self._raise_if_diverged()  # after the record (and its alert) is written
        return stop_signal

    def fit(self) -> Optional[int]:
        """Train until stop_step or a stop signal. Returns the signal number that stopped the run,
        or None when it ran to the end."""
        self.start_step = self.global_step
        self._install_signal_handlers()
        try:
            if self.global_step >= self.stop_step:
                self.log(f"nothing to do: already at step {self.global_step} of {self.stop_step}")
            for callback in self._ordered:
                callback.pre_train()
            agreed: Optional[int] = None
            batches = DevicePrefetcher(self._batches(), self.device)
            while self.global_step < self.stop_step:
                for callback in self._ordered:
                    callback.pre_load_batch()
                started = time.perf_counter()
                batch, self._data_state = next(batches)
                self.last_data_time_s = time.perf_counter() - started
                self.last_batch_tokens = int(batch["input_ids"].numel())
                stop_signal = self._train_step(batch)
                if stop_signal is not None:
                    self._cancel_signal = agreed = stop_signal
                    break
                if self._stop_reason is not None:
                    break
            for callback in self._ordered:
                callback.post_train()
            if self._stop_reason is not None:
                raise AlertStop(self._stop_reason)
            # Only an agreed signal decides the exit code, so every rank returns the same one
            # (a signal that came after the last check is late: the run had finished anyway).
            return agreed
        except BaseException as exc:
            for callback in self._ordered:
                try:
                    callback.on_error(exc)
                except Exception as inner:  # keep the original error; mention the second one
                    _log0(self, f"callback {callback.name} failed while handling an error: {inner!r}")
            raise
        finally:
            self._restore_signal_handlers()
            for callback in self._ordered:
                try:
                    callback.close()
                except Exception as inner:
                    _log0(self, f"callback {callback.name} failed to close: {inner!r}")
