"""Start a sweep from the editor (ctrl+g): the edited config is the base, the dialog takes the
axes. Grid axes multiply, paired axes step together (core/sweep.py); the preview lists every
variant as it would run, or the one line that says why it cannot. ctrl+l queues the sweep
and starts its worker (core/sweep_queue.py); the runs screen then shows the queue.
"""

from __future__ import annotations

from typing import List, Optional

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.widgets import Input, Label, Static

from engine.config import ConfigError, ExperimentConfig
from olmo_tui.core.sweeps.sweep import SweepSpec, Variant, default_name, first_line, parse_axis, plan, split_axes

from .dialogs import Dialog


class SweepDialog(Dialog):
    DEFAULT_CSS = """
    SweepDialog { align: center middle; }
    SweepDialog .sweep-label { margin-top: 1; }
    SweepDialog #sweep-preview { height: auto; max-height: 10; }
    """
    BINDINGS = [Binding("escape", "close", "Back"), Binding("ctrl+l", "launch", "Launch sweep")]

    def __init__(self, cfg: ExperimentConfig, preset_name: Optional[str] = None) -> None:
        super().__init__(id="sweep-dialog")
        self.cfg = cfg
        self.preset_name = preset_name
        self.variants: List[Variant] = []
        self.spec: Optional[SweepSpec] = None
        self.problem: Optional[str] = "give at least one axis"

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(f"Sweep over {self.cfg.run_name}", classes="dialog-title")
            yield Label("grid axes, ';' between them: train_module.optim.lr=1e-3,3e-3; init_seed=0,1",
                        classes="sweep-label")
            # Compact inputs: at 80x24 the preview and the hint below them must stay on screen.
            yield Input(id="sweep-grid", placeholder="a.b=v1,v2; c.d=v1,v2", compact=True)
            yield Label("paired axes (step together, same number of values)", classes="sweep-label")
            yield Input(id="sweep-zip", placeholder="model.d_model=128,256; model.n_heads=4,8", compact=True)
            yield Label("runs at once", classes="sweep-label")
            yield Input("1", id="sweep-parallel", type="integer", compact=True)
            yield Label("sweep name (empty: from the run name and the time)", classes="sweep-label")
            yield Input(id="sweep-name", compact=True)
            with VerticalScroll(id="sweep-preview"):
                yield Static("", id="sweep-variants", markup=False)
            yield Label("ctrl+l queues the sweep and starts it · esc goes back", classes="dialog-hint")

    def on_mount(self) -> None:
        self.query_one("#sweep-grid", Input).focus()
        self.update_preview()

    @on(Input.Changed)
    def _changed(self, event: Input.Changed) -> None:
        self.update_preview()

    def _value(self, widget_id: str) -> str:
        return self.query_one(f"#{widget_id}", Input).value.strip()

    def update_preview(self) -> None:
        try:
            parallel = self._value("sweep-parallel")
            spec = SweepSpec(
                grid=[parse_axis(a, "grid axis") for a in split_axes(self._value("sweep-grid"))],
                zipped=[parse_axis(a, "paired axis") for a in split_axes(self._value("sweep-zip"))],
                name=self._value("sweep-name") or None,
                max_parallel=int(parallel) if parallel.isdigit() else parallel or 1,
            )
            self.variants = plan(spec, base=self.cfg)
            self.spec, self.problem = spec, None
        except ConfigError as exc:
            self.variants, self.spec, self.problem = [], None, first_line(exc)
        preview = self.query_one("#sweep-variants", Static)
        if self.problem:
            preview.update(self.problem)
            return
        lines = [f"{len(self.variants)} runs, at most {self.spec.max_parallel} at once:"]
        lines += [f"{v.index + 1:>3}  {v.run_name}  " + " ".join(f"--{p}={val}" for p, val in v.changes)
                  for v in self.variants]
        preview.update("\n".join(lines))

    def action_launch(self) -> None:
        if self.problem or not self.spec:
            self.app.notify(self.problem or "nothing to sweep", severity="error")
            return
        name = self.spec.name or default_name(self.variants)
        spec, variants, preset = self.spec, self.variants, self.preset_name
        app = self.app

        def work_() -> None:
            from olmo_tui.core.launch.sweep_queue import queue_sweep, spawn_worker

            try:
                queue_sweep(name, spec, variants, preset=preset)
                spawn_worker(name)
            except Exception as exc:  # a taken name, an unwritable runs folder: say so, keep the app
                app.call_from_thread(app.notify, f"sweep not started: {exc}", severity="error", timeout=10)
                return
            app.call_from_thread(app.notify, f"sweep {name}: {len(variants)} runs queued")
            app.call_from_thread(app.action_show_runs)

        self.dismiss(name)
        app.run_worker(work_, thread=True, group="sweep", exit_on_error=False)
