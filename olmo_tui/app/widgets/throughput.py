"""The throughput panel: loss, tokens/s and MFU over steps (sparklines), the current values,
a progress bar with the ETA to the hard stop (or max duration), the data-loading share and
GPU memory when the engine reports it, and an MoE's router health (load balance per block). Fed with metrics records (docs/CONTRACTS.md), from
metrics.jsonl or from `[metrics]` lines of a log stream alike."""

from __future__ import annotations

from collections import deque
from typing import Any, Deque, Dict, Optional

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Label, ProgressBar, Sparkline, Static

from engine.run_dir import custom_metrics, record_alerts
from olmo_tui.core.formatting import custom_metric_line, data_mix, eval_losses, format_eta, human_count, router_health

SERIES = (  # key in the record, label, how to show the current value
    ("loss", "loss", lambda v: f"{v:.4f}"),
    ("tps", "tokens/s", lambda v: human_count(v)),
    ("mfu", "MFU", lambda v: f"{v:.1f}%"),
)
MAX_POINTS = 4096  # per series: more than any panel is wide; the sparkline buckets them


class ThroughputPanel(Vertical):
    DEFAULT_CSS = """
    ThroughputPanel { width: 46; height: 1fr; padding: 0 1; border-right: solid $panel; }
    ThroughputPanel Label { width: 1fr; height: 1; }
    ThroughputPanel .series-label { margin-top: 1; }
    ThroughputPanel Sparkline { height: 3; }
    ThroughputPanel #tp-loss-marks { height: 1; width: 1fr; color: $warning; display: none; }
    ThroughputPanel #tp-progress-label { margin-top: 1; }
    ThroughputPanel #tp-extra { margin-top: 1; height: 7; width: 1fr; color: $text-muted; }
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.points: Dict[str, Deque[float]] = {key: deque(maxlen=MAX_POINTS) for key, _, _ in SERIES}
        # Custom metrics (a callback's, e.g. an extension's): values by name; one is shown at a
        # time, `picked` (the monitor's `m` key picks the next).
        self.custom: Dict[str, Deque[float]] = {}
        self.picked = 0
        self.latest: Dict[str, Any] = {}
        self.records_seen = 0
        self._dirty = False
        self._last_step: Optional[int] = None
        # Stability alerts on the loss plot: the loss points (counted from the first, so the
        # bounded deque's shifting does not move them) whose record carried an alert.
        self.loss_count = 0
        self.alert_points: Deque[int] = deque(maxlen=256)

    def compose(self) -> ComposeResult:
        yield Label("waiting for the first metrics...", id="tp-progress-label")
        yield ProgressBar(total=None, show_eta=False, id="tp-progress")
        for key, label, _ in SERIES:
            yield Label(label, id=f"tp-{key}-label", classes="series-label")
            yield Sparkline([], summary_function=max, id=f"tp-{key}")
            if key == "loss":
                yield Static("", id="tp-loss-marks", markup=False)
        yield Static("", id="tp-extra")

    def on_mount(self) -> None:
        self.set_interval(0.25, self.redraw)

    def add(self, record: Dict[str, Any]) -> None:
        """One metrics record (UI thread). Cheap: drawing happens on the next tick."""
        step = record.get("step")
        if step is not None and self._last_step is not None and step <= self._last_step:
            # A resumed run restarts below the last step: start the plots over.
            for series in self.points.values():
                series.clear()
            self.alert_points.clear()
        self._last_step = step
        for key, _, _ in SERIES:
            value = record.get(key)
            if key == "tps":
                value = record.get("tps_total", value)
            if isinstance(value, (int, float)):
                self.points[key].append(float(value))
                if key == "loss":
                    self.loss_count += 1
        if record_alerts(record) and self.points["loss"]:
            self.alert_points.append(self.loss_count - 1)
        for name in custom_metrics([record]):
            self.custom.setdefault(name, deque(maxlen=MAX_POINTS)).append(float(record[name]))
        self.latest.update({k: v for k, v in record.items() if v is not None})
        self.records_seen += 1
        self._dirty = True

    def alert_marks(self) -> str:
        """A row under the loss plot: ▲ under the columns where a stability alert fired (the
        sparkline spreads the points over its width, so a point's column is its share of them)."""
        shown = len(self.points["loss"])
        first = self.loss_count - shown  # the loss point the plot starts with
        width = self.query_one("#tp-loss", Sparkline).size.width
        inside = [p - first for p in self.alert_points if p >= first]
        if not inside or not width or not shown:
            return ""
        row = [" "] * width
        for index in inside:
            row[min(index * width // shown, width - 1)] = "▲"
        return "".join(row)

    def custom_line(self) -> Optional[str]:
        names = sorted(self.custom)
        if not names:
            return None
        position = self.picked % len(names)
        return custom_metric_line(names[position], self.custom[names[position]], position, len(names))

    def pick_next_custom(self) -> None:
        self.picked += 1
        self._dirty = True

    def redraw(self) -> None:
        if not self._dirty:
            return
        self._dirty = False
        latest = self.latest
        for key, label, show in SERIES:
            value = latest.get("tps_total", latest.get("tps")) if key == "tps" else latest.get(key)
            text = f"{label}  {show(value)}" if isinstance(value, (int, float)) else f"{label}  -"
            # Fixed-size widgets (CSS): update without a layout pass.
            self.query_one(f"#tp-{key}-label", Label).update(text, layout=False)
            self.query_one(f"#tp-{key}", Sparkline).data = list(self.points[key])
        marks, row = self.alert_marks(), self.query_one("#tp-loss-marks", Static)
        if row.display != bool(marks):  # a row only once an alert came (80x24 has none to spare)
            row.display = bool(marks)
        row.update(marks, layout=False)
        step, total = latest.get("step"), latest.get("total_steps")
        bar = self.query_one("#tp-progress", ProgressBar)
        if total:
            bar.update(total=total, progress=min(step or 0, total))
        eta = format_eta(latest.get("eta_s")) if latest.get("eta_s") is not None else "--:--"
        self.query_one("#tp-progress-label", Label).update(
            f"step {step}" + (f" / {total}" if total else "") + f"   ETA {eta}", layout=False)
        extra = []
        if latest.get("tokens") is not None:
            extra.append(f"tokens {human_count(latest['tokens'])}")
        if latest.get("data_pct") is not None:
            extra.append(f"data loading {latest['data_pct']:.1f}% of step time")
        if latest.get("gpu/active_gib") is not None:
            gpu = f"GPU mem {latest['gpu/active_gib']:.1f} GiB active"
            if latest.get("gpu/reserved_gib") is not None:
                gpu += f", {latest['gpu/reserved_gib']:.1f} reserved"
            if latest.get("gpu/peak_gib") is not None:
                gpu += f", peak {latest['gpu/peak_gib']:.1f}"
            extra.append(gpu)
        # a mixture; named held-out sets; an MoE's router health; the picked custom metric
        for line in (data_mix(latest), eval_losses(latest), router_health(latest), self.custom_line()):
            if line:
                extra.append(line)
        self.query_one("#tp-extra", Static).update("\n".join(extra), layout=False)
