"""The config form, generated from the schema tree (olmo_tui.core.config.form_model): no widget is
written for a particular field. The form only draws; the editor screen owns the data,
validates it and tells the form which fields are invalid or changed.

A collapsed section builds its fields the first time it opens: the whole schema is ~150
fields (~900 widgets, 2.5 s to mount on 2 cores), most of which a session never looks at.
Section titles still count errors and changes of fields not built yet."""

from __future__ import annotations

from typing import Any, Callable, Dict, List

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.widget import Widget
from textual.widgets import Button, Collapsible, Static

from olmo_tui.core.config import form_model as fm

from .fields import FieldRow, row_for
from .section import Section, SectionToggle, section_description

# Sections open when the editor opens: what most edits touch.
OPEN_SECTIONS = ("model", "data_loader", "train_module")


class ConfigForm(VerticalScroll):
    class SectionBuilt(Message):
        """Fields of a section were just built: the editor re-applies errors and marks."""

    def __init__(self, schema: fm.FieldSpec, get_data: Callable[[], Dict[str, Any]], **kwargs) -> None:
        super().__init__(**kwargs)
        self.schema = schema
        self.get_data = get_data
        self.rows: Dict[str, FieldRow] = {}
        self.sections: Dict[str, Section] = {}
        self.toggles: Dict[str, SectionToggle] = {}
        self.bodies: Dict[str, Vertical] = {}
        self.unbuilt: Dict[str, fm.FieldSpec] = {}

    def compose(self) -> ComposeResult:
        with Horizontal(id="form-top"):
            yield Static("", id="form-summary")
            yield Button("Launch", id="launch-button", compact=True, tooltip="enter here or ctrl+l anywhere")
        yield from self._build(self.schema.children, self.get_data())

    def _build(self, specs: List[fm.FieldSpec], values: Dict[str, Any]) -> List[Widget]:
        """Widgets of `specs`; `values` is their section's raw data."""
        widgets: List[Widget] = []
        for spec in specs:
            if spec.kind != fm.SECTION:
                row = row_for(spec, values.get(spec.name))
                self.rows[spec.path] = row
                widgets.append(row)
                continue
            collapsed = spec.path not in OPEN_SECTIONS
            children = [] if collapsed else self._section_children(spec)
            if collapsed:
                self.unbuilt[spec.path] = spec
            section = Section(spec, *children, collapsed=collapsed)
            self.sections[spec.path] = section
            widgets.append(section)
        return widgets

    def _section_children(self, spec: fm.FieldSpec) -> List[Widget]:
        value = fm.get_path(self.get_data(), spec.path)
        children: List[Widget] = [section_description(spec)] if spec.description else []
        # A section switched off shows its defaults (hidden until it is switched on).
        values = value if isinstance(value, dict) else fm.section_defaults(spec.model)
        body = Vertical(*self._build(spec.children, values), classes="section-body")
        if spec.optional:
            toggle = SectionToggle(spec, value is not None)
            self.toggles[spec.path] = toggle
            body.display = value is not None
            children.append(toggle)
        self.bodies[spec.path] = body
        children.append(body)
        return children

    async def build_section(self, path: str) -> None:
        spec = self.unbuilt.pop(path, None)
        if spec is None:
            return
        section = self.sections[path]
        await section.query_one(Collapsible.Contents).mount_all(self._section_children(spec))
        self.post_message(self.SectionBuilt())

    async def on_collapsible_expanded(self, event: Collapsible.Expanded) -> None:
        if isinstance(event.collapsible, Section):
            await self.build_section(event.collapsible.spec.path)

    # ---- updates from the editor --------------------------------------------------------------
    def show_data(self, data: Dict[str, Any]) -> None:
        """Show every value of `data` (after undo, a remedy, or the raw TOML mode)."""
        off = []
        for path, toggle in self.toggles.items():
            on = fm.get_path(data, path) is not None
            toggle.set_on(on)
            self.bodies[path].display = on
            if not on:
                off.append(path + ".")
        for path, row in self.rows.items():
            if path.startswith(tuple(off)):
                continue  # hidden while its section is off; keeps its last values
            value = fm.get_path(data, path)
            if not fm.same_value(value, row.value):
                row.set_value(value)

    def set_section_on(self, path: str, on: bool, data: Dict[str, Any]) -> None:
        self.bodies[path].display = on
        if on:
            self.show_data(data)

    def show_state(self, validation: fm.FormValidation, changed: List[str], data: Dict[str, Any]) -> None:
        changed_set = set(changed)
        for path, row in self.rows.items():
            issues = validation.by_field.get(path, [])
            row.show_issues([issue.message for issue in issues])
            row.mark_changed(path in changed_set)
        for path, section in self.sections.items():
            prefix = path + "."
            errors = {str(i) for p, issues in validation.by_field.items()
                      if p == path or p.startswith(prefix) for i in issues}
            n_changed = sum(1 for p in changed_set if p == path or p.startswith(prefix))
            enabled = fm.get_path(data, path) is not None if section.spec.optional else True
            section.update_badges(len(errors), n_changed, enabled)
        self._show_summary(validation)

    def _show_summary(self, validation: fm.FormValidation) -> None:
        summary = self.query_one("#form-summary", Static)
        if validation.ok:
            text = "✓ valid config"
        else:
            count = len(validation.issues)
            lines = [f"✗ {count} problem{'s' if count > 1 else ''} (launch blocked; ctrl+n: next):"]
            text = "\n".join(lines + [f"  {issue}" for issue in validation.issues])
        if text != getattr(self, "_summary_text", None):
            self._summary_text = text
            summary.update(text)
            summary.set_class(not validation.ok, "-invalid")

    async def focus_field(self, path: str) -> bool:
        """Open (and build) the sections above a field, then focus its editor."""
        parts = path.split(".")
        for depth in range(1, len(parts) + 1):
            section = self.sections.get(".".join(parts[:depth]))
            if section is not None:
                await self.build_section(section.spec.path)
                section.collapsed = False
        target = self.rows.get(path) or self.sections.get(path)
        if target is None:
            return False
        focusable = [w for w in target.query("*") if w.focusable]
        if focusable:
            focusable[0].focus()
        self.call_after_refresh(self.scroll_to_widget, target, top=True)
        return True
