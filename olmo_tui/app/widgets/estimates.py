"""The pre-flight estimates panel beside the form: size, compute, batch, duration, memory per
device against the accelerator, the remedies (one key each: f5-f8) and wall time at a stated MFU."""

from __future__ import annotations

from typing import List, Optional

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical, VerticalScroll
from textual.message import Message
from textual.widgets import Button, Static

from olmo_tui.core.formatting import gib, human_count, human_duration
from olmo_tui.core.config.estimates import Estimates, Remedy

REMEDY_KEYS = ("f5", "f6", "f7", "f8")


class EstimatesPanel(VerticalScroll):
    class ApplyRemedy(Message):
        def __init__(self, remedy: Remedy) -> None:
            super().__init__()
            self.remedy = remedy

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.remedies: List[Remedy] = []
        self._shown_remedies: Optional[list] = None

    def compose(self) -> ComposeResult:
        yield Static("", id="est-body")
        yield Static("", id="est-remedies-title")
        yield Vertical(id="est-remedies")
        yield Static("", id="est-wall")

    def show(self, est: Estimates, stale: bool = False) -> None:
        """Size and memory first, then the remedies (visible at 80x24 when memory is over),
        then wall time. A layout pass only when a block's line count changes, not per keystroke."""
        self.set_class(stale, "-stale")
        self._update("#est-body", render_estimates(est, stale))
        self._show_remedies(est.remedies if est.over_memory else [])
        self._update("#est-wall", render_wall_time(est))

    def _update(self, selector: str, text: Text) -> None:
        widget = self.query_one(selector, Static)
        lines = text.plain.count("\n")
        widget.update(text, layout=lines != getattr(widget, "_lines", None))
        widget._lines = lines

    def _show_remedies(self, remedies: List[Remedy]) -> None:
        signature = [(r.title, round(r.total_bytes)) for r in remedies]
        if signature == self._shown_remedies:
            return
        self._shown_remedies = signature
        self.remedies = remedies[: len(REMEDY_KEYS)]
        box = self.query_one("#est-remedies", Vertical)
        for button in box.query(".remedy"):
            button.remove()
        title = self.query_one("#est-remedies-title", Static)
        title.update("Remedies, in order (key applies):" if remedies else "")
        title.display = bool(remedies)
        for key, remedy in zip(REMEDY_KEYS, self.remedies):
            mark = "fits" if remedy.fits else "still over"
            label = f"{key} {remedy.title}: {gib(remedy.total_bytes)}, {mark}"
            # No ids: the old buttons are removed asynchronously and may still be there.
            box.mount(Button(label, classes="remedy", compact=True, name=key))

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.has_class("remedy") and event.button.name in REMEDY_KEYS:
            event.stop()
            self.apply(REMEDY_KEYS.index(event.button.name))

    def apply(self, index: int) -> bool:
        if index >= len(self.remedies):
            return False
        self.post_message(self.ApplyRemedy(self.remedies[index]))
        return True


def render_estimates(est: Estimates, stale: bool = False) -> Text:
    """Size, compute, steps and memory; at most ~34 columns wide (beside the form at 80x24)."""
    text = Text()

    def line(label: str, value: str, style: str = "") -> None:
        text.append(f"{label:<12}", style="bold")
        text.append(value + "\n", style=style)

    if stale:
        text.append("(invalid config: last valid)\n", style="italic")
    line("params", f"{human_count(est.params)} ({human_count(est.non_embedding_params)} non-emb)")
    if est.active_params is not None:  # MoE: FLOPs/token and MFU count these
        line("  active", f"{human_count(est.active_params)} per token")
    line("FLOPs/token", human_count(est.flops_per_token))
    line("tokens/step", f"{est.tokens_per_step:,}")
    if est.mesh:
        line("mesh", est.mesh)
    if est.steps_to_stop is not None:
        line("steps", f"{est.steps_to_stop:,} ({'hard stop' if est.stop_label == 'hard stop' else 'full run'})")
        if est.stop_label == "hard stop" and est.max_duration_steps is not None:
            line("  schedule", f"{est.max_duration_steps:,} (max duration)")
    else:
        line("steps", "? (duration in epochs)")
    if est.sources or est.sources_error:
        render_sources(text, est)
    mem = est.memory
    acc = est.accelerator
    device = f"{acc.name}, {acc.memory_gib:g} GiB" if acc else "no accelerator"
    text.append(f"\nmemory/device ({device})\n", style="bold")
    for name, value in mem.parts().items():
        text.append(f"  {name:<12}{gib(value):>10}\n")
    text.append(f"  {'total':<12}{gib(mem.total):>10}\n", style="bold reverse" if est.over_memory else "bold")
    if mem.approximate:
        text.append("  (selected_modules AC: as none)\n", style="italic")
    if est.over_memory:
        text.append("  ! exceeds device memory\n", style="bold reverse")
    return text


def render_sources(text: Text, est: Estimates) -> None:
    """A mixture: each source's share, the tokens the run needs of it and its epochs."""
    text.append("\nsources (needs, epochs/max)\n", style="bold")
    if est.sources_error:
        text.append(f"  {est.sources_error}\n", style="italic")
    for plan in est.sources:
        over = plan.problem() is not None
        text.append(f"  {plan.name[:10]:<10} {plan.ratio:<4g} {human_count(plan.tokens_needed):>6} "
                    f"{plan.epochs:.2f}/{plan.max_repetition:g}\n", style="bold reverse" if over else "")


def render_wall_time(est: Estimates) -> Text:
    text = Text()
    text.append(f"{'wall time':<12}", style="bold")
    if est.wall_seconds is not None:
        text.append(f"{human_duration(est.wall_seconds)}, {est.world_size} x {est.accelerator.name}\n")
        text.append(f"{'  at MFU':<12}", style="bold")
        text.append(f"{est.mfu_percent:.1f}% ({est.mfu_source})")
    elif est.accelerator is None:
        text.append("n/a (no accelerator)")
    else:
        text.append("? (duration in epochs)")
    return text
