"""Comparing runs: their metric curves on shared axes, final and best numbers, and the config
difference between two runs as override arguments.

Shared by `olmo-tui compare` / `olmo-tui diff` and the app's compare view, so both show the
same numbers. Reads only the run dirs (metrics.jsonl, config.toml): a finished or failed run
compares like a live one.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from engine.config import ExperimentConfig
from engine.run_dir import custom_metrics
from engine.run_dir import METRICS_FILE

from ..config import configdiff
from ..runs import tailing
from ..runs.registry import RunRecord

# What the compare view plots: (label, how to read it from a record, whether lower is better).
METRICS: Dict[str, Tuple[str, bool]] = {
    "loss": ("loss", True),
    "eval_loss": ("eval loss", True),
    "tps": ("tokens/s", False),
    "mfu": ("MFU %", False),
}
# Besides these, each named held-out set a run evaluates (dataset.eval_sets, or each source of
# a mixture) is a metric of its own: its record key `eval/lm/<name>/loss` (lower is better).
DOMAIN_EVAL = re.compile(r"^eval/lm/([^/]+)/loss$")
X_AXES = ("step", "tokens")
# Fields that name a run rather than change what it trains: two variants of one sweep differ in
# them by construction, so a diff that listed them would bury the real difference.
IDENTITY_FIELDS = ("run_name",)
# The view draws at most this many points per curve (a terminal has ~200 columns; drawing
# 100k points costs seconds). The last point is always kept so the curve ends where the run is.
MAX_POINTS = 1000


def metric_value(record: Dict[str, Any], metric: str) -> Optional[float]:
    if metric == "eval_loss":
        value = record.get("eval/lm/loss")
    elif metric == "tps":
        value = record.get("tps_total") or record.get("tps")
    else:
        value = record.get(metric)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def metric_label(metric: str) -> str:
    domain = DOMAIN_EVAL.match(metric)
    return f"eval loss {domain.group(1)}" if domain else METRICS[metric][0] if metric in METRICS else metric


def lower_is_better(metric: str) -> Optional[bool]:
    """None for a custom metric: which way is better is the extension's to know."""
    return True if DOMAIN_EVAL.match(metric) else METRICS[metric][1] if metric in METRICS else None


def domain_metrics(records: Sequence[Dict[str, Any]]) -> List[str]:
    """The per-domain eval metrics these records hold, sorted by name."""
    return sorted({key for record in records for key in record if DOMAIN_EVAL.match(key)})


@dataclass
class RunCurves:
    """One run's metric records, ready to plot or summarise."""

    run: RunRecord
    records: List[Dict[str, Any]] = field(default_factory=list)

    def series(self, metric: str, x_axis: str = "step") -> Tuple[List[float], List[float]]:
        """(xs, ys) of one metric, records lacking either value skipped."""
        xs: List[float] = []
        ys: List[float] = []
        for record in self.records:
            x, y = record.get(x_axis), metric_value(record, metric)
            if isinstance(x, (int, float)) and y is not None:
                xs.append(float(x))
                ys.append(y)
        return xs, ys

    def metrics(self) -> List[str]:
        """The fixed metrics, then this run's per-domain eval losses and custom metrics."""
        return [*METRICS, *domain_metrics(self.records), *custom_metrics(self.records)]

    def final(self) -> Dict[str, Any]:
        """The last value of each metric, with the step it was logged at."""
        out: Dict[str, Any] = {}
        for metric in self.metrics():
            for record in reversed(self.records):
                value = metric_value(record, metric)
                if value is not None:
                    out[metric] = {"value": value, "step": record.get("step")}
                    break
        if self.records:
            out["step"] = self.records[-1].get("step")
            out["tokens"] = self.records[-1].get("tokens")
        return out

    def best(self) -> Dict[str, Any]:
        """The best value of each metric (lowest loss, highest throughput), with its step."""
        out: Dict[str, Any] = {}
        for metric in self.metrics():
            if lower_is_better(metric) is None:
                continue
            found = [(metric_value(r, metric), r.get("step")) for r in self.records]
            found = [(v, s) for v, s in found if v is not None]
            if found:
                value, step = (min if lower_is_better(metric) else max)(found, key=lambda pair: pair[0])
                out[metric] = {"value": value, "step": step}
        return out


def load_curves(run: RunRecord) -> RunCurves:
    return RunCurves(run, tailing.read_metrics(Path(run.run_dir) / METRICS_FILE))


def smooth(values: Sequence[float], weight: float = 0.6) -> List[float]:
    """Exponential moving average with TensorBoard's debiasing (the first points are not
    dragged towards zero). weight 0 returns the values unchanged."""
    out: List[float] = []
    average, debias = 0.0, 1.0
    for value in values:
        average = weight * average + (1 - weight) * value
        debias *= weight
        out.append(average / (1 - debias) if debias < 1 else value)
    return out


def thin(xs: Sequence[float], ys: Sequence[float], max_points: int = MAX_POINTS) -> Tuple[List[float], List[float]]:
    """At most max_points evenly strided points, the last one kept."""
    if len(xs) <= max_points:
        return list(xs), list(ys)
    stride = math.ceil(len(xs) / max_points)
    keep = list(range(0, len(xs), stride))
    if keep[-1] != len(xs) - 1:
        keep.append(len(xs) - 1)
    return [xs[i] for i in keep], [ys[i] for i in keep]


def config_diff(before: ExperimentConfig, after: ExperimentConfig) -> Dict[str, Any]:
    """Dotted paths whose value differs (applied to `before` they give `after`), identity
    fields such as run_name left out."""
    changes = configdiff.diff(before, after)
    return {path: value for path, value in changes.items() if path not in IDENTITY_FIELDS}


def diff_overrides(before: ExperimentConfig, after: ExperimentConfig) -> List[str]:
    return configdiff.as_overrides(config_diff(before, after))


def extension_code_diff(run_a: RunRecord, run_b: RunRecord) -> Dict[str, List[Optional[str]]]:
    """Extension entry -> [sha256 in A, sha256 in B] where the two runs' snapshotted extension
    code differs (None: that run has no such extension)."""
    from engine.config.extensions.snapshot import hashes

    a, b = hashes(Path(run_a.run_dir)), hashes(Path(run_b.run_dir))
    return {key: [a.get(key), b.get(key)] for key in sorted({*a, *b}) if a.get(key) != b.get(key)}


def summary(curves: RunCurves, baseline: Optional[ExperimentConfig] = None,
            cfg: Optional[ExperimentConfig] = None) -> Dict[str, Any]:
    """What `olmo-tui compare --json` prints for one run."""
    run = curves.run
    out: Dict[str, Any] = {"id": run.id, "name": run.name, "status": run.status, "preset": run.preset,
                           "sweep": run.sweep, "final": curves.final(), "best": curves.best()}
    if baseline is not None and cfg is not None:
        out["overrides_vs_baseline"] = diff_overrides(baseline, cfg)
    return out
