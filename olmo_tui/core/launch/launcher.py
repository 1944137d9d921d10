"""launch(): the one way a run starts. Every front end calls it: `olmo-tui --preset ...`, the
editor's Launch, relaunch and resume (headless and in the app); the sweep queue uses the same
two halves (prepare.py) for its variants.

    pre-flight once (paths, the backend's own checks)    nothing exists yet: a mistake is exit 2
    then either: prepare + record + launch now           (no notify hook)
    or:          prepare + record as a one-run sweep     (launch.notify set, or the parent had a
                 and start its detached worker            hook): the worker starts the run, watches
                                                          it and calls the hook, whoever launched it

A hook is kept across relaunch and resume: from the parent's config.toml (launch.notify), or
from the sweep the parent ran in (a hook given by --notify-cmd lives in the sweep's spec).
"""

from __future__ import annotations

from typing import Mapping, Optional, Sequence

from engine.config import ExperimentConfig

from ..runs.registry import Registry, RunRecord
from ..sweeps.sweep import NotifySpec, SweepSpec, check_webhook_env, default_name, plan
from . import run_manager
from .prepare import Warn, preflight, start_now


def hook_of(cfg: ExperimentConfig) -> Optional[NotifySpec]:
    """The notify hook a config names (launch.notify), or None."""
    notify = cfg.launch.notify
    return NotifySpec.from_config(notify) if notify is not None and notify.is_set else None


def launch(cfg: ExperimentConfig, preset: Optional[str] = None, parent_id: Optional[str] = None,
           relation: Optional[str] = None, secrets: Optional[Mapping[str, str]] = None,
           registry: Optional[Registry] = None, hook: Optional[NotifySpec] = None,
           warn: Optional[Warn] = None) -> RunRecord:
    """Start a run of `cfg` (returns its record: running, or queued for the hook's worker).

    Raises engine.errors.UserError or ConfigError for a user mistake found before anything
    exists (no run dir, no record, no queue entry), BackendError / RegistryError / OSError when
    the backend or the registry fails (nothing left behind either). `hook` is a hook to keep
    when `cfg` names none (a relaunched sweep run's); warnings go to `warn`."""
    registry = registry or Registry()
    hook = hook_of(cfg) or hook
    if hook is not None:
        return _queue_with_hook(cfg, hook, preset, parent_id, relation, registry, warn)
    checked = preflight(cfg, warn)
    return start_now(checked, registry, secrets, preset=preset, parent_id=parent_id, relation=relation)


def _queue_with_hook(cfg: ExperimentConfig, hook: NotifySpec, preset: Optional[str], parent_id: Optional[str],
                     relation: Optional[str], registry: Registry, warn: Optional[Warn]) -> RunRecord:
    """A one-run sweep carrying the hook: the queue runs the pre-flight before writing anything
    (the run's own secrets are the worker's environment's: it starts the run)."""
    from .sweep_queue import queue_sweep, spawn_worker

    spec = SweepSpec(notify=hook)
    variants = plan(spec, base=cfg)
    check_webhook_env(spec)
    name = default_name(variants)
    (run,) = queue_sweep(name, spec, variants, preset=preset, registry=registry, parent_id=parent_id,
                         relation=relation, warn=warn)
    spawn_worker(name)
    return registry.get(run.id) or run


def parent_hook(run: RunRecord, registry: Registry) -> Optional[NotifySpec]:
    """The hook the run had from its sweep (None for a run outside a sweep, or one without)."""
    if not run.sweep:
        return None
    from .sweep_queue import get_sweep

    sweep = get_sweep(run.sweep, registry)
    return sweep.notify if sweep is not None else None


def relaunch(run: RunRecord, overrides: Sequence[str] = (), resume: bool = False,
             secrets: Optional[Mapping[str, str]] = None, registry: Optional[Registry] = None,
             cfg: Optional[ExperimentConfig] = None, warn: Optional[Warn] = None) -> RunRecord:
    """A child run of `run`: its config with `overrides` (relaunch), or also continuing from
    its latest checkpoint (resume); `cfg` when the caller resolved it already. The parent's
    hook comes along."""
    registry = registry or Registry()
    if cfg is None:
        cfg = run_manager.resume_config(run, overrides) if resume else run_manager.relaunch_config(run, overrides)
    return launch(cfg, preset=run.preset, parent_id=run.id, relation="resume" if resume else "relaunch",
                  secrets=secrets, registry=registry, hook=parent_hook(run, registry), warn=warn)
