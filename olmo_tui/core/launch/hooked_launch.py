"""A launch whose config names a notification hook (launch.notify): started as a one-run sweep.

The run itself is an ordinary run; being a sweep of one means the detached sweep worker
(sweep_worker.py) starts it, watches it and calls the hook on its end or a stall, even after
whoever launched it (the app, a terminal) is gone. The headless CLI does the same through
cli_sweep (`olmo-tui --preset P --launch.notify.command='[...]'` becomes a one-run sweep);
this is the app editor's way in.
"""

from __future__ import annotations

from typing import Optional

from engine.config import ExperimentConfig

from ..runs.registry import Registry, RunRecord
from ..sweeps.sweep import NotifySpec, SweepSpec, check_webhook_env, default_name, plan


def wants_hook(cfg: ExperimentConfig) -> bool:
    return cfg.launch.notify is not None and cfg.launch.notify.is_set


def start_hooked_run(cfg: ExperimentConfig, preset: Optional[str] = None, parent_id: Optional[str] = None,
                     relation: Optional[str] = None, registry: Optional[Registry] = None) -> RunRecord:
    """Queue `cfg` as a one-run sweep carrying its hook and start the sweep's worker; returns
    the (queued) run. ConfigError, before anything is queued, when the webhook variable is unset."""
    from .sweep_queue import queue_sweep, spawn_worker

    registry = registry or Registry()
    spec = SweepSpec(notify=NotifySpec.from_config(cfg.launch.notify))
    variants = plan(spec, base=cfg)
    check_webhook_env(spec)
    name = default_name(variants)
    (run,) = queue_sweep(name, spec, variants, preset=preset, registry=registry, parent_id=parent_id,
                         relation=relation)
    spawn_worker(name)
    return registry.get(run.id) or run
