"""Trainer config: durations, checkpoint loading and the named callbacks."""

from __future__ import annotations

from typing import List, Literal, Optional

from pydantic import Field, field_validator

from .extensions.registry import register
from .extensions.schema import bind

from .base import Config, Duration, path_kind


class CallbackConfig(Config):
    enabled: bool = Field(True, description="Run this callback.")


class ConsoleLoggerConfig(CallbackConfig):
    log_interval: Optional[int] = Field(None, gt=0, description="Steps between log lines; unset = "
                                        "trainer.metrics_collect_interval.")


class SpeedMonitorConfig(CallbackConfig):
    num_warmup_steps: int = Field(2, ge=0, description="Steps left out of throughput averages (compile, "
                                  "allocator warm-up).")


class MetricsWriterConfig(CallbackConfig):
    """Writes metrics.jsonl in the run directory (the app reads it)."""


class CheckpointerConfig(CallbackConfig):
    save_interval: int = Field(1000, gt=0, description="Steps between permanent checkpoints.")
    ephemeral_save_interval: Optional[int] = Field(
        None, gt=0, description="Steps between ephemeral checkpoints (only the newest is kept); unset = none."
    )
    keep: int = Field(3, ge=0, description="Permanent checkpoints to keep (newest first); 0 = keep all.")
    keep_every: Optional[int] = Field(None, gt=0, description="Also keep every permanent checkpoint whose step "
                                      "is a multiple of this (milestones that `keep` never removes); unset = none.")
    save_async: bool = Field(True, description="Write checkpoints in the background on GPU.")


class GarbageCollectorConfig(CallbackConfig):
    gc_interval: int = Field(1000, gt=0, description="Steps between manual garbage collections (automatic GC "
                             "is paused so it cannot stall a step at random).")


class LMEvaluatorConfig(CallbackConfig):
    eval_interval: int = Field(1000, gt=0, description="Steps between held-out perplexity evaluations.")
    eval_batches: int = Field(8, gt=0, description="Micro-batches evaluated each time.")


class DownstreamEvaluatorConfig(CallbackConfig):
    enabled: bool = Field(False, description="Run this callback.")
    eval_interval: int = Field(1000, gt=0, description="Steps between downstream evaluations.")
    tasks: List[str] = Field(default_factory=lambda: ["sample-mc"],
                             description="Multiple-choice tasks: built-in names or paths to JSONL files.",
                             json_schema_extra=path_kind("task"))
    batch_size: int = Field(8, gt=0, description="Sequences (one per choice of an instance) scored per "
                            "forward pass.")
    max_instances: Optional[int] = Field(None, gt=0, description="Evaluate only the first N instances of "
                                         "each task (faster in-loop checks); unset = all.")

    @field_validator("tasks", mode="before")
    @classmethod
    def _one_task(cls, value):
        return [value] if isinstance(value, str) else value  # `--...tasks=hellaswag`: a list of one


class ProfilerConfig(CallbackConfig):
    enabled: bool = Field(False, description="Run this callback.")
    skip_first: int = Field(5, ge=0, description="Steps before the profiler's schedule starts.")
    wait: int = Field(1, ge=0, description="Idle steps in each cycle.")
    warmup: int = Field(2, ge=0, description="Traced-but-discarded steps in each cycle.")
    active: int = Field(3, gt=0, description="Recorded steps in each cycle.")
    repeat: int = Field(1, ge=1, description="Cycles to record.")
    ranks: List[int] = Field(default_factory=lambda: [0], description="Ranks that write a trace.")


class GPUMonitorConfig(CallbackConfig):
    """GPU memory (active/reserved, peak per interval); silent on CPU."""


class WandBConfig(CallbackConfig):
    enabled: bool = Field(False, description="Run this callback.")
    project: str = Field("olmo-tui", description="W&B project.")
    entity: Optional[str] = Field(None, description="W&B entity (team or user).")
    group: Optional[str] = Field(None, description="W&B run group.")
    tags: List[str] = Field(default_factory=list, description="W&B tags.")
    mode: Literal["online", "offline"] = Field("offline", description="offline writes local files only "
                                                "(<run dir>/wandb; upload later with `wandb sync`); online "
                                                "needs WANDB_API_KEY in the environment.")
    name: Optional[str] = Field(None, description="W&B run name; unset = the experiment's run_name.")


class ConfigSaverConfig(CallbackConfig):
    """Writes the resolved config into every checkpoint."""


AlertAction = Literal["warn", "skip", "stop"]


class StabilityMonitorConfig(CallbackConfig):
    """Loss spikes, grad-norm spikes and non-finite values: an alert in the metrics stream, then
    the kind's action (warn = the alert only; skip = the step's update is not applied; stop = the
    update is not applied, a final checkpoint is written and the run ends with exit 1). Reads the
    loss once per step (one host sync)."""

    window: int = Field(20, ge=3, description="Recent healthy steps a loss or grad norm is judged against.")
    min_history: int = Field(8, ge=2, description="Steps seen before spikes are judged (the start of training "
                             "moves fast).")
    loss_spike_sigma: float = Field(6.0, gt=0, description="A loss above the window's mean by this many "
                                    "standard deviations (at least 1% of the mean each) is a spike.")
    grad_norm_spike_factor: float = Field(5.0, gt=1, description="A grad norm above this multiple of the "
                                          "window's median is a spike (needs train_module.max_grad_norm).")
    on_loss_spike: AlertAction = Field("warn", description="Action on a loss spike: warn, skip (the update) or "
                                       "stop (with a checkpoint of the weights before the spike).")
    on_grad_norm_spike: Literal["warn", "stop"] = Field(
        "warn", description="Action on a grad-norm spike: warn or stop (seen after the update is applied).")
    on_non_finite: Literal["skip", "stop"] = Field(
        "stop", description="Action on a NaN/inf loss: skip (the update) or stop (no checkpoint of a diverged "
        "model is written; the last healthy one stays).")


class HangWatchConfig(CallbackConfig):
    """Hang detection: a watchdog thread on every rank; no finished step for `multiple` x the
    median step time (and at least `min_s`) marks the run stalled and dumps every thread's
    Python stack to <run dir>/stacks/rank<R>.txt."""

    multiple: float = Field(10.0, gt=1, description="A stall is no finished step for this many median step times.")
    min_s: float = Field(120.0, gt=0, description="Seconds without a finished step that never count as a stall "
                         "(checkpoint saves, evals, compilation).")


class TelemetryConfig(CallbackConfig):
    """Per-GPU utilisation, memory, power and temperature (NVML: the `telemetry` extra) and the
    rank's CPU and memory, sampled in the background into the metrics (sys/* keys)."""

    interval_s: float = Field(10.0, gt=0, description="Seconds between samples.")


class CallbacksConfig(Config):
    """Callbacks by name; each can be switched off with `enabled = false`. The fields are the
    registered callbacks (engine/extensions/registry.py): the built-ins below, then extensions'."""


# name, config, class (imported by the engine only), description; in the order they are built.
_BUILTIN_CALLBACKS = (
    ("console_logger", ConsoleLoggerConfig, "console_logger:ConsoleLoggerCallback", "One readable line per log interval."),
    ("speed_monitor", SpeedMonitorConfig, "speed_monitor:SpeedMonitorCallback", "Tokens/s, MFU and data-loading share."),
    ("metrics_writer", MetricsWriterConfig, "metrics_writer:MetricsWriterCallback", "metrics.jsonl in the run dir."),
    ("checkpointer", CheckpointerConfig, "checkpointer:CheckpointerCallback", "Distributed checkpoints."),
    ("garbage_collector", GarbageCollectorConfig, "garbage_collector:GarbageCollectorCallback",
     "Scheduled garbage collection."),
    ("lm_evaluator", LMEvaluatorConfig, "lm_evaluator:LMEvaluatorCallback", "Held-out perplexity."),
    ("downstream_evaluator", DownstreamEvaluatorConfig, "downstream_evaluator:DownstreamEvaluatorCallback",
     "Multiple-choice accuracy."),
    ("profiler", ProfilerConfig, "profiler:ProfilerCallback", "torch.profiler Chrome traces."),
    ("gpu_monitor", GPUMonitorConfig, "gpu_monitor:GPUMonitorCallback", "GPU memory use."),
    ("wandb", WandBConfig, "wandb_logger:WandBCallback", "Weights & Biases logging."),
    ("config_saver", ConfigSaverConfig, "config_saver:ConfigSaverCallback", "Config copy in each checkpoint."),
    ("telemetry", TelemetryConfig, "telemetry:TelemetryCallback", "GPU / CPU telemetry (sys/* metrics)."),
    ("hang_watch", HangWatchConfig, "hang_watch:HangWatchCallback", "Stall detection and stack dumps."),
    ("stability_monitor", StabilityMonitorConfig, "stability_monitor:StabilityMonitorCallback",
     "Loss / grad-norm spike and NaN alerts."),
)
for _name, _config, _build, _description in _BUILTIN_CALLBACKS:
    register("callback", _name, f"engine.train.callbacks.{_build}", _config, _description)
bind("callback", CallbacksConfig)


class TrainerConfig(Config):
    """The fit loop."""

    save_folder: Optional[str] = Field(
        None, description="Where checkpoints go; unset = <run dir>/checkpoints. Rerunning with the same "
        "folder resumes from its latest complete checkpoint.", json_schema_extra=path_kind()
    )
    load_path: Optional[str] = Field(
        None, description="Checkpoint to load weights from when save_folder has none (fine-tuning); "
        "ignored once the run has its own checkpoint.", json_schema_extra=path_kind()
    )
    max_duration: Duration = Field(default_factory=lambda: Duration.steps(200),
                                   description="Length of training; drives the LR schedule.")
    hard_stop: Optional[Duration] = Field(
        None, description="Stop early at this point without changing the LR schedule; unset = max_duration."
    )
    metrics_collect_interval: int = Field(10, gt=0, description="Steps between metric collection (one "
                                          "host-device sync each).")
    cancel_check_interval: int = Field(25, gt=0, description="With several ranks: steps between the ranks' "
                                       "agreement on a stop signal (a CPU barrier each), as in OLMo-core; a "
                                       "signal stops the run at the next multiple. One process stops at once.")
    no_checkpoints: bool = Field(False, description="Save no checkpoints at all.")
    no_evals: bool = Field(False, description="Run no in-loop evaluations.")
    callbacks: CallbacksConfig = Field(default_factory=CallbacksConfig, description="Callbacks by name.")
