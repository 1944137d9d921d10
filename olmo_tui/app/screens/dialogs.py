"""Small modal screens: contextual help, the diff view (overrides), the launch preview, the
save-as-preset prompt and a yes/no confirmation. Each closes with escape."""

from __future__ import annotations

from typing import List, Optional, Tuple

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static


class Dialog(ModalScreen):
    BINDINGS = [Binding("escape", "close", "Close")]

    def action_close(self) -> None:
        self.dismiss(None)


class TextDialog(Dialog):
    """A titled, scrollable text: help, diff view, launch preview."""

    BINDINGS = [Binding("escape,q", "close", "Close")]

    def __init__(self, title: str, body: str, dialog_id: str) -> None:
        super().__init__(id=dialog_id)
        self._title, self._body = title, body

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(self._title, classes="dialog-title")
            with VerticalScroll(classes="dialog-body"):
                yield Static(self._body, classes="dialog-text", markup=False)
            yield Label("esc closes", classes="dialog-hint")


def help_text(title: str, intro: str, keys: List[Tuple[str, str]], extra: str = "") -> str:
    width = max((len(k) for k, _ in keys), default=0)
    lines = [intro, ""] + [f"{key:<{width}}  {what}" for key, what in keys]
    if extra:
        lines += ["", extra]
    return "\n".join(lines)


class ConfirmDialog(Dialog):
    """Yes/no; dismisses True or False (y / n keys too)."""

    BINDINGS = [Binding("escape,n", "no", "No"), Binding("y", "yes", "Yes")]

    def __init__(self, question: str) -> None:
        super().__init__(id="confirm")
        self.question = question

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static(self.question, classes="dialog-text", markup=False)
            with Horizontal(classes="dialog-buttons"):
                yield Button("Yes (y)", id="yes", compact=True)
                yield Button("No (n)", id="no", compact=True)

    def action_yes(self) -> None:
        self.dismiss(True)

    def action_no(self) -> None:
        self.dismiss(False)

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")


class SaveDialog(Dialog):
    """Asks a preset name (and a description); dismisses (name, description) or None."""

    def __init__(self, default_name: str, default_description: str = "") -> None:
        super().__init__(id="save-dialog")
        self.default_name = default_name
        self.default_description = default_description

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label("Save as user preset", classes="dialog-title")
            yield Label("name (letters, digits, . _ -)")
            yield Input(self.default_name, id="save-name", compact=True)
            yield Label("description")
            yield Input(self.default_description, id="save-description", compact=True)
            yield Static("", id="save-error", classes="field-error")
            yield Label("enter saves, esc cancels", classes="dialog-hint")

    @on(Input.Submitted)
    def _submit(self, event: Input.Submitted) -> None:
        event.stop()
        name = self.query_one("#save-name", Input).value.strip()
        description = self.query_one("#save-description", Input).value.strip()
        from engine.config import ConfigError
        from engine.config.presets import check_preset_name

        try:
            check_preset_name(name)
        except ConfigError as exc:
            self.query_one("#save-error", Static).update(f"✗ {exc.issues[0].message}")
            return
        self.dismiss((name, description))


class AnnotateDialog(Dialog):
    """A run's notes and tags (comma-separated); dismisses (notes or None, tags) or None."""

    def __init__(self, run_id: str, notes: Optional[str], tags: List[str]) -> None:
        super().__init__(id="annotate-dialog")
        self.run_id, self.notes, self.tags = run_id, notes or "", tags

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(f"Notes and tags of {self.run_id}", classes="dialog-title", markup=False)
            yield Label("notes")
            yield Input(self.notes, id="annotate-notes", compact=True)
            yield Label("tags, comma-separated (the runs filter / matches them)")
            yield Input(", ".join(self.tags), id="annotate-tags", compact=True)
            yield Static("", id="annotate-error", classes="field-error", markup=False)
            yield Label("enter saves, esc cancels", classes="dialog-hint")

    @on(Input.Submitted)
    def _submit(self, event: Input.Submitted) -> None:
        from olmo_tui.core.runs.registry import tag_problem

        event.stop()
        tags: List[str] = []
        for tag in (t.strip() for t in self.query_one("#annotate-tags", Input).value.split(",")):
            if tag and tag not in tags:
                tags.append(tag)
        problem = next((tag_problem(t) for t in tags if tag_problem(t)), None)
        if problem:
            self.query_one("#annotate-error", Static).update(f"✗ {problem}")
            return
        self.dismiss((self.query_one("#annotate-notes", Input).value.strip() or None, tags))


def show_text(app, title: str, body: str, dialog_id: str, callback: Optional[callable] = None) -> None:
    app.push_screen(TextDialog(title, body, dialog_id), callback)
