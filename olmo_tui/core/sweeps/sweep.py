"""Sweeps: many variants of one base config, from a grid of axes and/or paired ("zipped") axes.

    olmo-tui sweep --preset tiny-cpu --sweep train_module.optim.lr=1e-3,3e-3 --sweep init_seed=0,1
    olmo-tui sweep --preset tiny-cpu --sweep-zip model.d_model=128,256 --sweep-zip model.n_heads=4,8
    olmo-tui sweep my-sweep.toml            # the same in a file (docs/GUIDE.md: Sweeps)

Grid axes multiply (2 x 2 = 4 variants); zipped axes step together, as Axolotl's paired sweep
does (all the same length L: L variants, or L times the grid). A mixture's ratio is an axis too
(`--sweep dataset.sources.docs.ratio=0.1,0.3`): the sources a variant leaves alone are scaled
so the ratios still sum to 1 (their own proportions kept), and a variant that sets every source's
ratio (an explicit zip) is taken as written. Every variant is resolved and
validated before anything is queued, so a bad value in any of them is one usage error and
nothing is left behind. Each variant's run name is the base run name plus its changed fields
(`tiny-cpu-lr1e-3-init_seed1`).

This module only plans (spec -> variants); sweep_queue.py queues and launches them.
"""

from __future__ import annotations

import itertools
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import yaml

from engine.config import ConfigError, ExperimentConfig, apply_overrides, format_override, load_experiment
from engine.config.notify import ENV_NAME, NOTIFY_EVENTS, NotifyConfig
from engine.config.presets import config_file_data, preset_data, read_toml

_RATIO = re.compile(r"^dataset\.sources\.([^.]+)\.ratio$")  # a mixture source's ratio
SWEEP_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_NAME_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
RUN_NAME_MAX = 128  # engine/run.py: check_run_name
SPEC_KEYS = {"name", "preset", "config", "overrides", "grid", "zip", "max_parallel", "notify"}
# Other spellings a sweep file may use for the same tables (W&B calls the grid "parameters").
SPEC_ALIASES = {"sweep": "grid", "parameters": "grid", "paired": "zip"}


@dataclass
class Axis:
    path: str  # dotted field, e.g. train_module.optim.lr
    values: List[str]  # each an override value as typed (YAML): "1e-3", "{value: 3, unit: steps}"


@dataclass
class NotifySpec:
    """A hook called on a run's end or stall: an argv (never a shell) and/or a webhook whose URL
    is read, when sending, from the environment variable named here (never stored)."""

    command: List[str] = field(default_factory=list)
    webhook_env: Optional[str] = None
    events: List[str] = field(default_factory=lambda: list(NOTIFY_EVENTS))
    stall_after_s: float = 600.0
    source: str = "notify"  # where it was given, for messages: a sweep's [notify] or a config's launch.notify

    def to_json(self) -> Dict[str, Any]:
        return {"command": self.command, "webhook_env": self.webhook_env, "events": self.events,
                "stall_after_s": self.stall_after_s}

    @classmethod
    def from_json(cls, data: Optional[Dict[str, Any]]) -> Optional["NotifySpec"]:
        return cls(**data) if data else None

    @classmethod
    def from_config(cls, section: Optional[NotifyConfig]) -> Optional["NotifySpec"]:
        """The hook a config names (launch.notify), None when it names none."""
        if section is None or not section.is_set:
            return None
        return cls(command=list(section.command), webhook_env=section.webhook_env, events=list(section.events),
                   stall_after_s=section.stall_after_s, source="launch.notify")


@dataclass
class SweepSpec:
    preset: Optional[str] = None
    config: Optional[str] = None
    overrides: List[str] = field(default_factory=list)  # applied to every variant
    grid: List[Axis] = field(default_factory=list)
    zipped: List[Axis] = field(default_factory=list)
    name: Optional[str] = None
    max_parallel: int = 1
    notify: Optional[NotifySpec] = None


@dataclass
class Variant:
    index: int
    run_name: str
    changes: List[Tuple[str, str]]  # (path, value text) this variant sets
    cfg: ExperimentConfig
    base_name: str  # the base config's run name (the sweep's default name starts with it)

    @property
    def overrides(self) -> List[str]:
        return [f"--{path}={value}" for path, value in self.changes] + [f"--run_name={self.run_name}"]


def split_values(text: str, sep: str = ",") -> List[str]:
    """'1,2,3' -> ['1', '2', '3'], commas inside [...], {...} or quotes kept: '[1, 2],[3]' is two."""
    values, depth, quote, start = [], 0, None, 0
    for i, char in enumerate(text):
        if quote:
            quote = None if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char in "[{":
            depth += 1
        elif char in "]}":
            depth -= 1
        elif char == sep and depth == 0:
            values.append(text[start:i].strip())
            start = i + 1
    values.append(text[start:].strip())
    return values


def split_axes(text: str) -> List[str]:
    """'a.b=1,2; c=3,4' -> ['a.b=1,2', 'c=3,4'] (the app's one-line form of several axes)."""
    return [part for part in split_values(text, ";") if part]


def parse_axis(arg: str, flag: str = "--sweep") -> Axis:
    path, has_value, raw = arg.removeprefix("--").partition("=")
    path = path.strip()
    values = split_values(raw) if has_value else []
    if not path or not values or any(not v for v in values):
        raise ConfigError.one("sweep", f"cannot read {flag} {arg!r}: expected {flag} section.field=v1,v2,...")
    return Axis(path, values)


def _axes_from_table(table: Any, where: str) -> List[Axis]:
    if not isinstance(table, dict):
        raise ConfigError.one(where, "must be a table of field = [values]")
    axes = []
    for path, values in _flatten_axes(table):
        if not isinstance(values, list) or not values:
            raise ConfigError.one(f"{where}.{path}", "must be a non-empty list of values")
        axes.append(Axis(path, [format_override(path, v).partition("=")[2] for v in values]))
    return axes


def _flatten_axes(table: Dict[str, Any], prefix: str = ""):
    # Both `"train_module.optim.lr" = [...]` and a nested [grid.train_module.optim] table work.
    for key, value in table.items():
        if isinstance(value, dict):
            yield from _flatten_axes(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


def parse_notify(data: Any) -> NotifySpec:
    if not isinstance(data, dict):
        raise ConfigError.one("notify", "must be a table: command = [...], webhook_env = \"VAR\"")
    unknown = set(data) - {"command", "webhook_env", "events", "stall_after_s"}
    if unknown:
        raise ConfigError.one(f"notify.{sorted(unknown)[0]}", "unknown key; allowed: command, webhook_env, events, "
                              "stall_after_s")
    spec = NotifySpec()
    command = data.get("command", [])
    if not isinstance(command, list) or not all(isinstance(part, str) and part for part in command):
        raise ConfigError.one("notify.command", "must be a list of strings (the argv; no shell is used)")
    spec.command = list(command)
    env = data.get("webhook_env")
    if env is not None and (not isinstance(env, str) or not ENV_NAME.match(env)):
        raise ConfigError.one("notify.webhook_env", "must name an environment variable (letters, digits, _), "
                              "not hold the URL itself")
    spec.webhook_env = env
    events = data.get("events", list(NOTIFY_EVENTS))
    if not isinstance(events, list) or any(e not in NOTIFY_EVENTS for e in events):
        raise ConfigError.one("notify.events", f"must be a list of: {', '.join(NOTIFY_EVENTS)}")
    spec.events = list(events)
    stall = data.get("stall_after_s", spec.stall_after_s)
    if isinstance(stall, bool) or not isinstance(stall, (int, float)) or stall <= 0:
        raise ConfigError.one("notify.stall_after_s", "must be a number of seconds > 0")
    spec.stall_after_s = float(stall)
    if not spec.command and not spec.webhook_env:
        raise ConfigError.one("notify", "give command = [...] and/or webhook_env = \"VAR\"")
    return spec


def load_spec_file(path: str) -> SweepSpec:
    """A sweep file: preset/config, overrides, [grid], [zip], max_parallel, name, [notify]."""
    file = Path(path).expanduser()
    if not file.is_file():
        raise ConfigError.one("sweep", f"no such sweep file: {path}")
    data = read_toml(file)
    for alias, key in SPEC_ALIASES.items():
        if alias in data:
            if key in data:
                raise ConfigError.one(alias, f"give [{key}] or [{alias}], not both")
            data[key] = data.pop(alias)
    unknown = set(data) - SPEC_KEYS
    if unknown:
        raise ConfigError.one(sorted(unknown)[0], f"unknown key in sweep file {path}; allowed: "
                              f"{', '.join(sorted(SPEC_KEYS))}")
    spec = SweepSpec(preset=data.get("preset"), config=data.get("config"), name=data.get("name"))
    overrides = data.get("overrides", [])
    if not isinstance(overrides, list) or not all(isinstance(o, str) for o in overrides):
        raise ConfigError.one("overrides", "must be a list of override strings like \"--a.b=v\"")
    spec.overrides = [o if o.startswith("--") else f"--{o}" for o in overrides]
    spec.grid = _axes_from_table(data.get("grid", {}), "grid")
    spec.zipped = _axes_from_table(data.get("zip", {}), "zip")
    if "max_parallel" in data:
        spec.max_parallel = data["max_parallel"]
    if "notify" in data:
        spec.notify = parse_notify(data["notify"])
    return spec


def check_spec(spec: SweepSpec) -> None:
    if isinstance(spec.max_parallel, bool) or not isinstance(spec.max_parallel, int) or spec.max_parallel < 1:
        raise ConfigError.one("max_parallel", f"must be a whole number >= 1, not {spec.max_parallel!r}")
    if spec.name is not None and not SWEEP_NAME.match(str(spec.name)):
        raise ConfigError.one("name", f"{spec.name!r} is not a valid sweep name: letters, digits, '.', '_', '-' "
                              "(starting with a letter or digit, at most 64 characters)")
    # No axes is one run, worth queueing only for the notify hook (the worker watches it).
    if not spec.grid and not spec.zipped and not spec.notify:
        raise ConfigError.one("sweep", "nothing to sweep: give --sweep a.b=v1,v2 (or --sweep-zip, or a sweep file)")
    paths = [axis.path for axis in spec.grid + spec.zipped]
    repeated = sorted({p for p in paths if paths.count(p) > 1})
    if repeated:
        raise ConfigError.one(repeated[0], "is swept twice; give each field once")
    lengths = {axis.path: len(axis.values) for axis in spec.zipped}
    if len(set(lengths.values())) > 1:
        listed = ", ".join(f"{path} has {n}" for path, n in lengths.items())
        raise ConfigError.one("sweep-zip", f"paired axes need the same number of values ({listed})")


def _short(value: str) -> str:
    """A value as a name part: '1e-3' stays, '{value: 100, unit: steps}' becomes '100_steps'."""
    if value[:1] in "{[":
        try:
            parsed = yaml.safe_load(value)
        except yaml.YAMLError:
            parsed = None
        if isinstance(parsed, dict):
            value = "_".join(str(v) for v in parsed.values())
        elif isinstance(parsed, list):
            value = "_".join(str(v) for v in parsed)
    return _NAME_UNSAFE.sub("_", value).strip("_.") or "x"


def variant_name(base: str, changes: Sequence[Tuple[str, str]], keys: Dict[str, str]) -> str:
    name = "-".join([base] + [f"{keys[path]}{_short(value)}" for path, value in changes])
    return name[:RUN_NAME_MAX]


def axis_keys(paths: Sequence[str]) -> Dict[str, str]:
    """The shortest readable key per axis: the field's own name (lr, init_seed; a source's name
    for its ratio), or its full dotted path when two axes share that name (data_loader.seed vs ...)."""
    # A mixture's ratio is named by its source: tiny-cpu-docs0.3, not ...-ratio0.3.
    last = {path: (m.group(1) if (m := _RATIO.match(path)) else path.rsplit(".", 1)[-1]) for path in paths}
    names = list(last.values())
    return {path: (key if names.count(key) == 1 else path) for path, key in last.items()}


def base_data(spec: SweepSpec, base: Optional[ExperimentConfig] = None) -> Dict[str, Any]:
    """The raw config every variant starts from: an in-memory config (the app's editor), else
    the preset or config file; plus the spec's common overrides."""
    if base is not None:
        data = base.model_dump(mode="json", exclude_none=True)
    elif spec.preset and spec.config:
        raise ConfigError.one("preset", "give either a preset or a config file, not both")
    elif spec.config:
        data = config_file_data(spec.config)
    elif spec.preset:
        data = preset_data(spec.preset)
    else:
        raise ConfigError.one("preset", "a sweep needs a base: --preset NAME or --config FILE")
    return apply_overrides(data, spec.overrides, ExperimentConfig)


def config_notify(spec: SweepSpec, base: Optional[ExperimentConfig] = None) -> Optional[NotifySpec]:
    """The hook the base config names (launch.notify of the preset, config file or overrides);
    the sweep's own hook (a [notify] table, --notify-* flags) is used instead when it has one."""
    return NotifySpec.from_config(load_experiment(base_data(spec, base)).launch.notify)


def check_webhook_env(spec: SweepSpec) -> None:
    """Before queueing: the worker inherits this environment, so a webhook variable unset now
    stays unset there. The message names the variable, never a value."""
    if spec.notify and spec.notify.webhook_env and not os.environ.get(spec.notify.webhook_env):
        raise ConfigError.one(f"{spec.notify.source}.webhook_env", f"${spec.notify.webhook_env} is not set "
                              "here; the sweep's worker reads the webhook URL from it")


def first_line(exc: ConfigError) -> str:
    lines = list(exc.lines())
    more = f" (and {len(lines) - 1} more)" if len(lines) > 1 else ""
    return (lines[0] if lines else "error: invalid config") + more


def plan(spec: SweepSpec, base: Optional[ExperimentConfig] = None) -> List[Variant]:
    """Every variant, resolved and validated. Raises ConfigError (one issue, naming the variant)
    on the first bad one, before anything is written."""
    check_spec(spec)
    data = base_data(spec, base)
    base_name = load_experiment(data).run_name
    grid = [[(axis.path, value) for value in axis.values] for axis in spec.grid]
    if spec.zipped:
        grid.append([[(axis.path, axis.values[i]) for axis in spec.zipped] for i in range(len(spec.zipped[0].values))])
    keys = axis_keys([axis.path for axis in spec.grid + spec.zipped])
    variants: List[Variant] = []
    used = set()
    for index, combo in enumerate(itertools.product(*grid)):
        changes: List[Tuple[str, str]] = []
        for part in combo:
            changes.extend(part if isinstance(part, list) else [part])
        name = variant_name(base_name, changes, keys)
        if name in used:  # two values that read the same once made safe for a name
            name = f"{name[:RUN_NAME_MAX - 4]}-{index}"
        used.add(name)
        changes += renormalised(data, changes)  # in the overrides, not in the name
        overrides = [f"--{path}={value}" for path, value in changes] + [f"--run_name={name}"]
        try:
            cfg = load_experiment(apply_overrides(data, overrides, ExperimentConfig))
        except ConfigError as exc:
            described = " ".join(f"{keys[path]}={value}" for path, value in changes)
            raise ConfigError.one(
                "sweep", f"variant {index + 1} ({described}): {first_line(exc).removeprefix('error: ')}"
            ) from None
        variants.append(Variant(index, name, changes, cfg, base_name))
    return variants


def renormalised(data: Dict[str, Any], changes: Sequence[Tuple[str, str]]) -> List[Tuple[str, str]]:
    """The ratio changes that keep a mixture summing to 1 when `changes` set some sources' ratios:
    the others scaled by (1 - the set ratios) / (their own sum). Nothing when no ratio is swept,
    every ratio is set, or the values are not numbers (validation then names the problem)."""
    sources = (data.get("dataset") or {}).get("sources") or {}
    swept = {m.group(1): value for path, value in changes if (m := _RATIO.match(path))}
    others = {name: spec.get("ratio") for name, spec in sources.items() if name not in swept}
    if not swept or not others:
        return []
    try:
        fixed = sum(float(value) for value in swept.values())
        total = sum(float(ratio) for ratio in others.values())
    except (TypeError, ValueError):
        return []
    if total <= 0 or fixed >= 1:
        return []
    return [(f"dataset.sources.{name}.ratio", f"{float(ratio) * (1 - fixed) / total:.10g}")
            for name, ratio in others.items()]


def default_name(variants: Sequence[Variant], now: Optional[float] = None) -> str:
    base = variants[0].base_name if variants else "sweep"
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(now or time.time()))
    return f"{_short(base)[:40]}-sweep-{stamp}"
