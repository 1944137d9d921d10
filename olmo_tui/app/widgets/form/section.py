"""A collapsible section of the form (one pydantic sub-model). An optional section (e.g.
train_module.ac_config) starts with a Switch that turns it on (fields at their defaults) or off
(the section is unset); its fields are hidden while it is off."""

from __future__ import annotations

from typing import Any

from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.message import Message
from textual.widgets import Collapsible, Label, Static, Switch

from olmo_tui.core.config import form_model as fm

from .fields import _dom_id, on_off


class SectionToggle(Horizontal):
    """The on/off switch of an optional section."""

    class Toggled(Message):
        def __init__(self, path: str, on: bool) -> None:
            super().__init__()
            self.path = path
            self.on = on

    def __init__(self, spec: fm.FieldSpec, on: bool) -> None:
        super().__init__(id=_dom_id(spec.path) + "--toggle", classes="section-toggle field-line")
        self.spec = spec
        self._on = on

    def compose(self) -> ComposeResult:
        yield Label("enabled", classes="field-name")
        with Horizontal(classes="field-editor bool"):
            yield Switch(self._on)
            yield Label(on_off(self._on), classes="switch-state")

    def set_on(self, on: bool) -> None:
        self._on = on
        self.query_one(Switch).value = on
        self.query_one(".switch-state", Label).update(on_off(on))

    @on(Switch.Changed)
    def _changed(self, event: Switch.Changed) -> None:
        event.stop()
        self.query_one(".switch-state", Label).update(on_off(event.value))
        if event.value != self._on:
            self._on = event.value
            self.post_message(self.Toggled(self.spec.path, event.value))


class Section(Collapsible):
    """Collapsible title shows the field name, a change mark and the section's error count."""

    def __init__(self, spec: fm.FieldSpec, *children, collapsed: bool = True) -> None:
        super().__init__(*children, title=spec.name, collapsed=collapsed, id=_dom_id(spec.path),
                         classes="form-section")
        self.spec = spec
        self.tooltip = spec.description

    def update_badges(self, errors: int, changed: int, enabled: Any = True) -> None:
        title = self.spec.name
        if enabled is False:
            title += "  (off)"
        if changed:
            title += f"  ● {changed} changed"
        if errors:
            title += f"  ✗ {errors} error{'s' if errors > 1 else ''}"
        if title != self.title:
            self.title = title
        if self.has_class("-invalid") != bool(errors):
            self.set_class(bool(errors), "-invalid")


def section_description(spec: fm.FieldSpec) -> Static:
    return Static(spec.description, classes="section-help")
