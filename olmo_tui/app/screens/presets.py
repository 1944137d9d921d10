"""The preset browser: built-in and user presets in a list with a `/` filter, and a detail pane
(family, params, layers x width, seq len, tokens/step, duration, GPUs and parallelism, data)."""

from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Optional

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Footer, Header, Input, OptionList, Static
from textual.widgets.option_list import Option

from olmo_tui.core.presets.catalog import PresetSummary, all_summaries
from olmo_tui.core.formatting import human_count

from .dialogs import help_text, show_text


def display_path(path: str) -> str:
    """A preset file as the user would type it: relative to the working dir, else with ~."""
    file = Path(path)
    for base, shown in ((Path.cwd(), ""), (Path.home(), "~/")):
        try:
            return shown + str(file.relative_to(base))
        except ValueError:
            continue
    return path


def render_detail(s: PresetSummary) -> Text:
    text = Text()
    text.append(f"{s.name}", style="bold")
    text.append("  (built-in)\n" if s.builtin else "  (user preset)\n")
    if s.description:
        text.append(s.description + "\n")
    text.append("\n")
    if s.error:
        text.append("INVALID: ", style="bold reverse")
        text.append(s.error + "\n")
        return text
    rows = [
        ("family", s.family or ""),
        ("params", f"{human_count(s.params or 0)} ({human_count(s.non_embedding_params or 0)} non-embedding)"),
        ("layers x width", f"{s.layers} x {s.d_model}"),
        ("seq len", f"{s.seq_len:,}"),
        ("tokens/step", f"{s.tokens_per_step:,}"),
        ("duration", s.duration or ""),
        ("GPUs", s.gpus or ""),
        ("parallelism", s.parallelism or ""),
        ("data", s.data or ""),
        ("file", display_path(s.path)),
    ]
    for label, value in rows:
        text.append(f"{label:<15}", style="bold")
        text.append(f"{value}\n")
    return text


class PresetBrowser(Screen):
    BINDINGS = [
        Binding("e", "edit", "Edit", key_display="enter/e"),
        Binding("ctrl+l,l", "launch", "Launch"),
        Binding("slash", "filter", "Filter"),
        Binding("escape", "clear_filter", "Clear filter", show=False),
        Binding("r", "app.show_runs", "Runs"),
        Binding("question_mark,f1", "help", "Help"),
        Binding("q", "app.quit", "Quit"),
    ]
    HELP = (
        "Presets: pick one, press enter to edit it (the form validates as you type and shows "
        "pre-flight estimates), or l to launch it as it is. Built-in presets live in presets/, "
        "yours in ~/.config/olmo-tui/presets/ (ctrl+s in the editor saves one)."
    )

    def __init__(self) -> None:
        super().__init__(id="presets")
        self.summaries: List[PresetSummary] = []
        self.by_name: Dict[str, PresetSummary] = {}

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="browser"):
            with Vertical(id="preset-side"):
                yield Input(placeholder="filter (/), esc clears", id="preset-filter", compact=True)
                yield OptionList(id="preset-list")
            yield Static("", id="preset-detail")
        yield Footer()

    def on_mount(self) -> None:
        self.title = "olmo-tui"
        self.sub_title = "presets"
        self.query_one("#preset-filter").display = False
        self.reload()
        self.query_one("#preset-list").focus()

    def reload(self, select: Optional[str] = None) -> None:
        self.summaries = all_summaries()
        self.by_name = {s.name: s for s in self.summaries}
        self._fill(self.query_one("#preset-filter", Input).value, select, keep=True)

    def _fill(self, query: str, select: Optional[str] = None, keep: bool = False) -> None:
        """Show the presets matching `query`; highlight `select`, else (keep) the current one,
        else the best match."""
        options = self.query_one("#preset-list", OptionList)
        current = select or (self.selected_name if keep else None)
        options.clear_options()
        words = query.lower().split()
        shown = []
        # Presets whose name matches come first, then those matching by description only.
        ranked = sorted(self.summaries, key=lambda s: not all(word in s.name.lower() for word in words))
        for s in ranked:
            haystack = f"{s.name} {s.description} {s.family or ''} {'builtin' if s.builtin else 'user'}".lower()
            if all(word in haystack for word in words):
                label = Text(s.name)
                label.append("  " + (human_count(s.params) if s.params else "invalid"), style="dim")
                if not s.builtin:
                    label.append(" (user)", style="italic")
                shown.append(Option(label, id=s.name))
        options.add_options(shown)
        names = [o.id for o in shown]
        if names:
            options.highlighted = names.index(current) if current in names else 0
        self._show_detail()

    @property
    def selected_name(self) -> Optional[str]:
        options = self.query_one("#preset-list", OptionList)
        if options.highlighted is None or options.option_count == 0:
            return None
        return options.get_option_at_index(options.highlighted).id

    def _show_detail(self) -> None:
        name = self.selected_name
        detail = self.query_one("#preset-detail", Static)
        detail.update(render_detail(self.by_name[name]) if name else "No preset matches the filter.")

    @on(OptionList.OptionHighlighted)
    def _highlighted(self) -> None:
        self._show_detail()

    @on(OptionList.OptionSelected)
    def _selected(self) -> None:
        self.action_edit()

    @on(Input.Changed, "#preset-filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        # Typing highlights the best match; emptying the filter (esc) keeps the highlighted one.
        self._fill(event.value, keep=not event.value)

    @on(Input.Submitted, "#preset-filter")
    def _filter_done(self) -> None:
        self.query_one("#preset-list").focus()

    def action_filter(self) -> None:
        box = self.query_one("#preset-filter", Input)
        box.display = True
        box.focus()

    def action_clear_filter(self) -> None:
        box = self.query_one("#preset-filter", Input)
        box.value = ""
        box.display = False
        self._fill("", keep=True)  # the highlighted preset stays highlighted
        self.query_one("#preset-list").focus()

    def action_edit(self) -> None:
        name = self.selected_name
        if name:
            self.app.open_preset(name)

    def action_launch(self) -> None:
        name = self.selected_name
        if name:
            self.app.launch_preset(name)

    def action_help(self) -> None:
        keys = [("enter, e", "edit the preset"), ("l, ctrl+l", "launch it as it is"), ("/", "filter the list"),
                ("esc", "clear the filter"), ("r", "runs"), ("ctrl+p", "command palette (every action)"),
                ("? / f1", "this help"), ("q, ctrl+q", "quit")]
        show_text(self.app, "Help: presets", help_text("presets", self.HELP, keys), "help")

    def palette_commands(self):
        yield ("Edit selected preset", "Open the config editor on the highlighted preset", self.action_edit)
        yield ("Launch selected preset", "Launch the highlighted preset unchanged", self.action_launch)
        yield ("Filter presets", "Type to filter the preset list", self.action_filter)
        yield ("Help: presets", "Keys of this screen", self.action_help)
        for s in self.summaries:
            yield (f"Edit preset {s.name}", s.description or "Open in the editor",
                   lambda name=s.name: self.app.open_preset(name))
