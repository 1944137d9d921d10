"""The compare view: several runs' curves overlaid on shared axes, with their config diff.

Opened from the runs table (space marks runs, C compares them). Four plots (loss, eval loss,
tokens/s, MFU) drawn by plotext through textual-plotext; each run keeps one colour for the
life of the view (its place in the selection), shown in the legend next to its final numbers.
The baseline (the first run marked, `b` moves it) is what the legend's deltas and the diff
panel are relative to.

Runs that evaluate named held-out sets (dataset.eval_sets, or each source of a mixture) add
one eval-loss curve per set: `e` steps the eval plot through overall and each set.

Keys: x steps/tokens on the x axis · s smoothing · l log x · b next baseline · e eval set · esc back;
on the baseline run: enter its monitor (logs) · r relaunch · R resume · c cancel.
"""

from __future__ import annotations

import re

from typing import Dict, List, Optional, Tuple

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid
from textual.screen import Screen
from textual.widgets import Footer, Header, Static
from textual_plotext import PlotextPlot

from olmo_tui.core.views import compare
from olmo_tui.core.runs.registry import RunRecord
from olmo_tui.core.launch.run_manager import refresh_run, run_config

from .dialogs import help_text, show_text

# Distinct on dark and light themes, in the order runs get them.
PALETTE: List[Tuple[int, int, int]] = [
    (86, 156, 255), (255, 159, 67), (80, 200, 120), (235, 87, 87),
    (190, 120, 255), (64, 210, 210), (240, 200, 60), (255, 120, 190),
]
SMOOTHING = 0.6
LIVE_RELOAD_S = 5.0
Series = Tuple[str, List[float], List[float]]  # (run id, xs, ys)


def colour_of(index: int) -> Tuple[int, int, int]:
    return PALETTE[index % len(PALETTE)]


class ComparePlot(PlotextPlot):
    """One metric of every run; `series` is what was drawn last (tests read it)."""

    def __init__(self, metric: str) -> None:
        # A custom metric's name may hold '/' or '.': not in a widget id.
        super().__init__(id="plot-" + re.sub(r"[^A-Za-z0-9-]", "-", metric), classes="compare-plot")
        self.metric = metric
        self.series: List[Series] = []

    def draw(self, series: List[Series], colours: Dict[str, Tuple[int, int, int]], x_label: str,
             log_x: bool) -> None:
        self.series = series
        plt = self.plt
        plt.clear_figure()
        # The title names the metric; the x axis is named once, in the legend's mode line (at
        # 80x24 each plot has only ~6 rows to spare).
        plt.title(compare.metric_label(self.metric) + (f" vs {x_label}" if x_label != "step" else ""))
        drawn = False
        for run_id, xs, ys in series:
            if xs:
                plt.plot(xs, ys, color=colours[run_id], marker="braille")
                drawn = True
        if log_x and drawn:
            plt.xscale("log")
        self.refresh()


class CompareScreen(Screen):
    DEFAULT_CSS = """
    CompareScreen #compare-legend { height: auto; max-height: 9; padding: 0 1; }
    CompareScreen #compare-plots { grid-size: 2 2; grid-gutter: 0 1; height: 1fr; min-height: 10; }
    CompareScreen #compare-diff { height: auto; max-height: 8; padding: 0 1; color: $text-muted; }
    CompareScreen .compare-plot { height: 1fr; }
    """
    BINDINGS = [
        Binding("x", "toggle_x", "Steps/tokens"),
        Binding("s", "toggle_smoothing", "Smooth"),
        Binding("l", "toggle_log_x", "Log x"),
        Binding("b", "next_baseline", "Baseline"),
        Binding("e", "next_eval", "Eval set", show=False),  # in the help; the footer is full at 80x24
        Binding("question_mark,f1", "help", "Help"),
        Binding("escape,q", "back", "Back"),
        # On the baseline run (b picks it): in help and the palette, the footer is full at 80.
        Binding("enter", "logs", "Logs", show=False),
        Binding("r", "relaunch", "Relaunch", show=False),
        Binding("R", "resume", "Resume", show=False),
        Binding("c", "cancel", "Cancel", show=False),
    ]

    def __init__(self, runs: List[RunRecord]) -> None:
        super().__init__(id="compare")
        self.runs = list(runs)
        self.colours = {run.id: colour_of(i) for i, run in enumerate(self.runs)}
        self.curves: Dict[str, compare.RunCurves] = {}
        self.configs: Dict[str, object] = {}
        self.diffs: Dict[str, List[str]] = {}
        self.baseline = self.runs[0].id if self.runs else None
        self.x_axis = "step"
        self.smoothing = False
        self.log_x = False
        self.loaded = False

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("loading metrics...", id="compare-legend")
        with Grid(id="compare-plots"):
            for metric in compare.METRICS:
                yield ComparePlot(metric)
        yield Static("", id="compare-diff")
        yield Footer()

    def on_mount(self) -> None:
        self.title = "olmo-tui"
        self.sub_title = f"compare {len(self.runs)} runs"
        self.load()
        if any(not run.terminal for run in self.runs):
            # A run still going grows its curves: read the files again now and then (a whole
            # re-read: metrics files are small next to logs, and this only runs while one is live).
            self.set_interval(LIVE_RELOAD_S, self.load)

    @work(thread=True, exclusive=True, group="compare-load", exit_on_error=False)
    def load(self) -> None:
        self.runs = [refresh_run(run) for run in self.runs]  # statuses in the legend stay current
        curves = {run.id: compare.load_curves(run) for run in self.runs}
        configs = dict(self.configs)  # a run's config does not change: read once
        for run in self.runs:
            if run.id in configs:
                continue
            try:
                configs[run.id] = run_config(run)
            except Exception:  # a missing or no longer valid config.toml: no diff for that run
                configs[run.id] = None
        self.app.call_from_thread(self._loaded, curves, configs)

    def _loaded(self, curves, configs) -> None:
        self.curves = curves
        self.configs = configs
        self.loaded = True
        # A metric an extension records gets its own plot once a run has logged it.
        shown = {plot.metric for plot in self.query(ComparePlot)}
        custom = compare.custom_metrics([r for c in curves.values() for r in c.records])
        new = [ComparePlot(metric) for metric in custom if metric not in shown]
        if new:
            self.query_one("#compare-plots", Grid).mount(*new)
            self.call_after_refresh(self.redraw)
        self.redraw()

    # ---- drawing ------------------------------------------------------------------------------
    def series(self, metric: str) -> List[Series]:
        out = []
        for run in self.ordered_runs():
            xs, ys = self.curves[run.id].series(metric, self.x_axis)
            if self.smoothing:
                ys = compare.smooth(ys, SMOOTHING)
            if self.log_x:
                pairs = [(x, y) for x, y in zip(xs, ys, strict=True) if x > 0]
                xs, ys = [p[0] for p in pairs], [p[1] for p in pairs]
            xs, ys = compare.thin(xs, ys)
            out.append((run.id, xs, ys))
        return out

    def ordered_runs(self) -> List[RunRecord]:
        """Baseline first (drawn first, listed first); the others in selection order."""
        return sorted(self.runs, key=lambda run: run.id != self.baseline)

    def redraw(self) -> None:
        if not self.loaded:
            return
        x_label = "tokens" if self.x_axis == "tokens" else "step"
        for plot in self.query(ComparePlot):
            plot.draw(self.series(plot.metric), self.colours, x_label, self.log_x)
        self.query_one("#compare-legend", Static).update(self.legend())
        self.query_one("#compare-diff", Static).update(self.diff_text())

    def legend(self) -> Text:
        base_final = self.curves[self.baseline].final().get("loss") if self.baseline else None
        text = Text()
        modes = ["x: steps" if self.x_axis == "step" else "x: tokens",
                 "smoothed" if self.smoothing else "raw", "log x" if self.log_x else "linear x"]
        text.append("  ·  ".join(modes) + "\n", style="dim")
        for run in self.ordered_runs():
            r, g, b = self.colours[run.id]
            final = self.curves[run.id].final()
            text.append("━━ ", style=f"bold rgb({r},{g},{b})")
            text.append(f"{self.label(run)} ", style="bold")
            text.append(f"({run.status}) ")
            loss = final.get("loss")
            if loss:
                text.append(f"loss {loss['value']:.4g}")
                if base_final and run.id != self.baseline:
                    text.append(f" ({loss['value'] - base_final['value']:+.3g})")
            if run.id == self.baseline:
                text.append("  ◆ baseline", style="bold")
            text.append("\n")
        text.rstrip()
        return text

    def label(self, run: RunRecord) -> str:
        """How the legend and the diff name a run: its name where no other compared run shares
        it, else its id (colour alone must never tell two runs apart)."""
        if sum(1 for other in self.runs if other.name == run.name) == 1:
            return run.name
        return run.id

    def diff_text(self) -> str:
        base_cfg = self.configs.get(self.baseline) if self.baseline else None
        lines = []
        for run in self.ordered_runs():
            if run.id == self.baseline:
                continue
            cfg = self.configs.get(run.id)
            if base_cfg is None or cfg is None:
                lines.append(f"{self.label(run)}: (config unavailable)")
                continue
            overrides = compare.diff_overrides(base_cfg, cfg)
            self.diffs[run.id] = overrides
            lines.append(f"{self.label(run)}: " + (" ".join(overrides) or "same config"))
        return ("vs baseline  " + "\n             ".join(lines)) if lines else ""

    # ---- actions ------------------------------------------------------------------------------
    def action_toggle_x(self) -> None:
        self.x_axis = "tokens" if self.x_axis == "step" else "step"
        self.redraw()

    def action_toggle_smoothing(self) -> None:
        self.smoothing = not self.smoothing
        self.redraw()

    def action_toggle_log_x(self) -> None:
        self.log_x = not self.log_x
        self.redraw()

    def action_next_baseline(self) -> None:
        if not self.runs:
            return
        ids = [run.id for run in self.runs]
        self.baseline = ids[(ids.index(self.baseline) + 1) % len(ids)]
        self.redraw()

    def eval_metrics(self) -> List[str]:
        """The eval plot's choices: overall, then every named held-out set any run evaluates."""
        named = {m for curves in self.curves.values() for m in compare.domain_metrics(curves.records)}
        return ["eval_loss", *sorted(named)]

    def action_next_eval(self) -> None:
        plot = self.query_one("#plot-eval-loss", ComparePlot)
        choices = self.eval_metrics()
        plot.metric = choices[(choices.index(plot.metric) + 1) % len(choices)] if plot.metric in choices \
            else choices[0]
        self.redraw()

    def action_back(self) -> None:
        self.app.pop_screen()

    def action_help(self) -> None:
        paragraphs = __doc__.split("\n\n")
        show_text(self.app, "Help: compare", help_text("Compare", paragraphs[1] + "\n\n" + paragraphs[3], []),
                  "compare-help")

    def action_logs(self) -> None:
        if run := self.baseline_run():
            self.app.open_monitor(run)

    def action_relaunch(self) -> None:
        from .run_actions import open_relaunch_editor

        if run := self.baseline_run():
            open_relaunch_editor(self.app, run)

    def action_resume(self) -> None:
        from .run_actions import resume_run

        if run := self.baseline_run():
            resume_run(self, run)

    def action_cancel(self) -> None:
        from .run_actions import confirm_cancel

        if run := self.baseline_run():
            confirm_cancel(self, run)

    def palette_commands(self):
        name = self.label(self.baseline_run()) if self.baseline_run() else "baseline"
        yield (f"Logs of {name}", "The baseline run's monitor (enter)", self.action_logs)
        yield (f"Relaunch {name}", "Edit the baseline run's config, launch a child (r)", self.action_relaunch)
        yield (f"Resume {name}", "From its latest checkpoint, as a new run (R)", self.action_resume)
        yield (f"Cancel {name}", "SIGTERM, final checkpoint, SIGKILL after 60 s (c)", self.action_cancel)
        yield ("Next baseline", "The next run becomes the baseline (b)", self.action_next_baseline)
        yield ("Help: compare", "Keys of this screen (?)", self.action_help)

    def baseline_run(self) -> Optional[RunRecord]:
        return next((run for run in self.runs if run.id == self.baseline), None)
