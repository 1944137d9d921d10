"""One row of the config form per leaf field, with an editor chosen by the field's kind (the
schema decides, never the field's name): validated text Inputs for numbers and text, a Select
for Literal/enum fields, a Switch for booleans, a Duration editor (value + unit) and a list
editor. Every row posts `FieldRow.Edited(path, value)`; validation happens in the form, on the
whole config, so cross-field rules can mark every field they involve."""

from __future__ import annotations

from typing import Any, List, Optional

from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widget import Widget
from textual.widgets import Button, Input, Label, Select, Static, Switch

from olmo_tui.core.config import form_model as fm


def _dom_id(path: str) -> str:
    return "f-" + path.replace(".", "--")


class FieldRow(Widget):
    """Label + editor + the error line of one field."""

    class Edited(Message):
        def __init__(self, row: "FieldRow", value: Any) -> None:
            super().__init__()
            self.row = row
            self.path = row.spec.path
            self.value = value

    class Focused(Message):
        def __init__(self, row: "FieldRow") -> None:
            super().__init__()
            self.row = row

    def __init__(self, spec: fm.FieldSpec, value: Any) -> None:
        super().__init__(id=_dom_id(spec.path), classes="field-row")
        self.spec = spec
        self._value = value
        self._shown_issues: List[str] = []
        self._shown_changed = False
        self.tooltip = spec.description

    def compose(self) -> ComposeResult:
        with Horizontal(classes="field-line"):
            yield Label(self.spec.name, classes="field-name")
            yield from self.compose_editor()
        yield Static("", classes="field-error")

    # -- to override per kind --------------------------------------------------------------
    def compose_editor(self) -> ComposeResult:
        raise NotImplementedError

    def show_value(self, value: Any) -> None:
        """Show `value` without posting Edited."""
        raise NotImplementedError

    # -- shared -------------------------------------------------------------------------------
    def set_value(self, value: Any) -> None:
        """Show a value set by the form. The editors' own Changed events that follow carry the
        same value, so `edited` drops them: only a real user edit posts Edited."""
        self._value = value
        self.show_value(value)

    def edited(self, value: Any) -> None:
        if fm.same_value(value, self._value):
            return
        self._value = value
        self.post_message(self.Edited(self, value))

    def show_issues(self, messages: List[str]) -> None:
        if messages == self._shown_issues:
            return  # restyling a row is the costly part of an edit: only on a real change
        self._shown_issues = list(messages)
        error = self.query_one(".field-error", Static)
        error.update("\n".join(f"✗ {m}" for m in messages))
        self.set_class(bool(messages), "-invalid")

    def mark_changed(self, changed: bool) -> None:
        if changed == self._shown_changed:
            return
        self._shown_changed = changed
        self.set_class(changed, "-changed")
        label = self.query_one(".field-name", Label)
        label.update(("● " if changed else "") + self.spec.name, layout=False)  # fixed width

    def on_descendant_focus(self) -> None:
        self.post_message(self.Focused(self))

    @property
    def value(self) -> Any:
        return self._value


class TextField(FieldRow):
    """Numbers, text and {k: v} mappings typed as text; parsed like an override value."""

    def compose_editor(self) -> ComposeResult:
        placeholder = "unset" if self.spec.optional else self.spec.kind
        yield Input(fm.format_value(self.spec, self._value), placeholder=placeholder, compact=True,
                    classes="field-editor", select_on_focus=False)

    def show_value(self, value: Any) -> None:
        self.query_one(Input).value = fm.format_value(self.spec, value)

    @on(Input.Changed)
    def _changed(self, event: Input.Changed) -> None:
        event.stop()
        self.edited(fm.parse_text(self.spec, event.value))

    @on(Input.Submitted)
    def _submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.screen.focus_next()


def on_off(value: bool) -> str:
    # A Switch shows its state by colour only; the word keeps it readable under NO_COLOR.
    return "on" if value else "off"


class BoolField(FieldRow):
    def compose_editor(self) -> ComposeResult:
        with Horizontal(classes="field-editor bool"):
            yield Switch(bool(self._value))
            yield Label(on_off(bool(self._value)), classes="switch-state")

    def show_value(self, value: Any) -> None:
        self.query_one(Switch).value = bool(value)
        self.query_one(".switch-state", Label).update(on_off(bool(value)))

    @on(Switch.Changed)
    def _changed(self, event: Switch.Changed) -> None:
        event.stop()
        self.query_one(".switch-state", Label).update(on_off(event.value))
        self.edited(event.value)


class ChoiceField(FieldRow):
    def _selected(self, value: Any) -> Any:
        if value is None:
            return Select.NULL
        return fm.format_value(self.spec, value) if isinstance(value, bool) else str(value)

    def compose_editor(self) -> ComposeResult:
        options = [(choice, choice) for choice in self.spec.choices]
        value = self._selected(self._value)
        if value is not Select.NULL and value not in self.spec.choices:
            options.append((value, value))  # an invalid value from TOML: shown, flagged by validation
        yield Select(options, value=value, allow_blank=self.spec.optional, prompt="unset", compact=True,
                     classes="field-editor")

    def show_value(self, value: Any) -> None:
        self.query_one(Select).value = self._selected(value)

    @on(Select.Changed)
    def _changed(self, event: Select.Changed) -> None:
        event.stop()
        if event.value is Select.NULL:
            self.edited(None)
        elif self.spec.choices == ("true", "false"):
            self.edited(event.value == "true")
        else:
            self.edited(event.value)


class DurationField(FieldRow):
    """value + unit; an empty value unsets an optional duration."""

    UNITS = ("steps", "tokens", "epochs")

    def compose_editor(self) -> ComposeResult:
        value = self._value if isinstance(self._value, dict) else {}
        with Horizontal(classes="field-editor duration"):
            yield Input(fm.format_value(fm.FieldSpec("", "", fm.INT, ""), value.get("value")),
                        placeholder="unset" if self.spec.optional else "count", compact=True,
                        classes="duration-value", select_on_focus=False)
            yield Select([(u, u) for u in self.UNITS], value=value.get("unit", "steps"), allow_blank=False,
                         compact=True, classes="duration-unit")

    def show_value(self, value: Any) -> None:
        value = value if isinstance(value, dict) else {}
        self.query_one(".duration-value", Input).value = "" if value.get("value") is None else repr(value["value"])
        self.query_one(".duration-unit", Select).value = value.get("unit", "steps")

    def _current(self) -> Any:
        text = self.query_one(".duration-value", Input).value.strip()
        if not text and self.spec.optional:
            return None
        unit = self.query_one(".duration-unit", Select).value
        return {"value": fm.parse_item(fm.INT, text) if text else text, "unit": unit}

    @on(Input.Changed)
    @on(Select.Changed)
    def _changed(self, event) -> None:
        event.stop()
        self.edited(self._current())

    @on(Input.Submitted)
    def _submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.screen.focus_next()


class ListField(FieldRow):
    """One Input per item; `+` adds an item, `-` beside an item removes it. A tuple field
    (fixed length) has neither."""

    def _items(self, value: Any) -> List[Any]:
        return list(value) if isinstance(value, (list, tuple)) else []

    def compose_editor(self) -> ComposeResult:
        with Vertical(classes="field-editor list-items"):
            for item in self._items(self._value):
                yield self._item_row(item)
            if self.spec.fixed_length is None:
                yield Button("+ add", classes="list-add", compact=True)

    def _item_row(self, item: Any) -> Horizontal:
        widgets: List[Widget] = [Input(fm.format_item(item), compact=True, classes="list-item",
                                       select_on_focus=False)]
        if self.spec.fixed_length is None:
            widgets.append(Button("-", classes="list-remove", compact=True))
        return Horizontal(*widgets, classes="list-row")

    def show_value(self, value: Any) -> None:
        items = self._items(value)
        inputs = list(self.query(".list-item").results(Input))
        if len(inputs) == len(items):
            for widget, item in zip(inputs, items):
                widget.value = fm.format_item(item)
            return
        for row in self.query(".list-row"):
            row.remove()
        container = self.query_one(".list-items", Vertical)
        add = self.query(".list-add")
        for item in items:
            container.mount(self._item_row(item), before=add.first() if add else None)

    def _current(self) -> Any:
        kind = self.spec.item_kind or fm.TEXT
        return [fm.parse_item(kind, widget.value) for widget in self.query(".list-item").results(Input)]

    @on(Input.Changed)
    def _changed(self, event: Input.Changed) -> None:
        event.stop()
        self.edited(self._current())

    @on(Input.Submitted)
    def _submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.screen.focus_next()

    @on(Button.Pressed, ".list-add")
    async def _add(self, event: Button.Pressed) -> None:
        event.stop()
        row = self._item_row("")
        await self.query_one(".list-items", Vertical).mount(row, before=event.button)
        row.query_one(Input).focus()
        self.edited(self._current())

    @on(Button.Pressed, ".list-remove")
    async def _remove(self, event: Button.Pressed) -> None:
        event.stop()
        await event.button.parent.remove()
        self.edited(self._current())


ROW_FOR_KIND = {
    fm.INT: TextField, fm.FLOAT: TextField, fm.TEXT: TextField, fm.MAPPING: TextField,
    fm.BOOL: BoolField, fm.CHOICE: ChoiceField, fm.DURATION: DurationField, fm.LIST: ListField,
}


def row_for(spec: fm.FieldSpec, value: Any) -> Optional[FieldRow]:
    return ROW_FOR_KIND[spec.kind](spec, value)
