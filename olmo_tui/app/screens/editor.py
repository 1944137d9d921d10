"""The config editor: the schema-generated form (or raw TOML) on the left, live pre-flight
estimates on the right, a help line for the focused field. The screen owns the state: `data`
(raw config being edited), `baseline` (the preset or parent run it started from) and the last
validation; every edit revalidates the whole config (field and cross-field rules)."""

from __future__ import annotations

import copy
import shlex
import sys
from typing import Any, Dict, List, Optional, Tuple

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.screen import Screen
from textual.widgets import Button, ContentSwitcher, Footer, Header, Static, TextArea

from engine.config import ExperimentConfig
from engine.config.presets import PresetRef
from olmo_tui.core.config import configdiff, estimates
from olmo_tui.core.config import form_model as fm
from olmo_tui.core.launch.command_preview import LaunchRequest

from ..widgets.estimates import REMEDY_KEYS, EstimatesPanel
from ..widgets.form.fields import FieldRow
from ..widgets.form.form import ConfigForm
from ..widgets.form.section import SectionToggle
from .dialogs import ConfirmDialog, SaveDialog, help_text, show_text

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

_TREE: Dict[int, fm.FieldSpec] = {}


def schema_generation() -> int:
    from engine.config.extensions.registry import generation

    return generation()


def schema_tree() -> fm.FieldSpec:
    """The form's tree, built once per shape of the schema (an extension loaded adds fields)."""
    key = schema_generation()
    if key not in _TREE:
        _TREE.clear()
        _TREE[key] = fm.schema_tree()
    return _TREE[key]


class EditorScreen(Screen):
    BINDINGS = [
        Binding("ctrl+l", "launch", "Launch"),
        Binding("ctrl+g", "sweep", "Sweep", show=False),  # in help and the palette: the footer is full at 80
        Binding("ctrl+s", "save", "Save preset"),
        Binding("ctrl+o", "diff", "Diff"),
        Binding("ctrl+t", "toggle_toml", "TOML"),
        Binding("ctrl+z", "undo_field", "Undo field"),
        Binding("ctrl+n", "next_error", "Next error"),
        Binding("ctrl+b", "toggle_estimates", "Estimates", show=False),
        Binding("f1", "help", "Help"),
        Binding("question_mark", "help", "Help", show=False),
        Binding("escape", "back", "Back"),
    ] + [Binding(key, f"remedy({i})", f"Remedy {i + 1}", show=False) for i, key in enumerate(REMEDY_KEYS)]

    HELP = (
        "Editor: every field of the experiment config, generated from its schema. Values are "
        "checked as you type, field by field and across fields; errors show beside each field "
        "involved and in the summary at the top, and block launch. ● marks a field changed "
        "from the preset. The estimates panel follows every valid edit; when memory exceeds the "
        "accelerator, the remedies are listed in order and f5-f8 apply one."
    )

    def __init__(self, cfg: ExperimentConfig, preset: Optional[PresetRef] = None,
                 parent_run_id: Optional[str] = None, description: str = "") -> None:
        super().__init__(id="editor")
        self.preset = preset
        self.parent_run_id = parent_run_id
        self.description = description
        self.baseline_cfg = cfg
        self.baseline: Dict[str, Any] = fm.config_data(cfg)
        self.data: Dict[str, Any] = copy.deepcopy(self.baseline)
        self._use_schema()
        self.validation = fm.validate_form(self.data, self.widget_paths)
        self.last_estimates: Optional[estimates.Estimates] = None
        self.focused_path: Optional[str] = None
        self._measured_mfu = None
        self.launched: Optional[Dict[str, Any]] = None  # the data last handed to a launch

    # ---- layout --------------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="editor-main"):
            with ContentSwitcher(initial="form", id="editor-switcher"):
                yield ConfigForm(self.schema, lambda: self.data, id="form")
                yield TextArea("", id="toml", show_line_numbers=True)
            yield EstimatesPanel(id="estimates")
        yield Static("", id="editor-problem")
        yield Static("", id="field-help")
        yield Footer()

    def on_mount(self) -> None:
        self.title = "olmo-tui"
        origin = f"preset {self.preset.name}" if self.preset else "run config"
        if self.parent_run_id:
            origin = f"relaunch of {self.parent_run_id}"
        self.sub_title = f"editing {origin}"
        if self.preset:
            runs = estimates.run_dirs_for_preset(self.preset.name)
            self._measured_mfu = estimates.best_mfu(runs)
        self.revalidate()
        self._help("tab / shift+tab move between fields; f1 help")

    # ---- state -----------------------------------------------------------------------------------
    @property
    def form(self) -> ConfigForm:
        return self.query_one(ConfigForm)

    @property
    def config(self) -> Optional[ExperimentConfig]:
        return self.validation.config

    def changed(self) -> List[str]:
        return fm.changed_paths(self.data, self.baseline, self.specs)

    def unsaved_edits(self) -> str:
        """What closing this editor would lose ("" for nothing): edits neither launched nor saved."""
        changed = self.changed()
        if not changed or self.data == self.launched:
            return ""
        return f"{self.sub_title}: {len(changed)} changed field{'s' if len(changed) > 1 else ''}"

    def _use_schema(self) -> None:
        self.schema_key = schema_generation()
        self.schema = schema_tree()
        self.specs = [s for s in self.schema.walk() if s.path]
        self.widget_paths = [s.path for s in self.specs]

    async def _rebuild_form(self) -> None:
        """An extension listed since the form was built brought fields of its own (validating
        imported it): build the form again from the schema that now has them."""
        self._use_schema()
        self.data = fm.fill_defaults(self.data, self.schema)
        switcher = self.query_one(ContentSwitcher)
        current = switcher.current
        await self.form.remove()
        await switcher.mount(ConfigForm(self.schema, lambda: self.data, id="form"))
        switcher.current = current
        self.revalidate()

    def revalidate(self) -> None:
        self.validation = fm.validate_form(self.data, self.widget_paths)
        if self.schema_key != schema_generation():
            self.schema_key = schema_generation()  # once: the rebuild below takes the new schema
            self.call_later(self._rebuild_form)
            return
        self.form.show_state(self.validation, self.changed(), self.data)
        panel = self.query_one(EstimatesPanel)
        if self.validation.ok:
            self.last_estimates = estimates.estimate(self.validation.config, self._measured_mfu)
            panel.show(self.last_estimates)
        elif self.last_estimates is not None:
            panel.show(self.last_estimates, stale=True)
        self._show_problem()
        self._update_help()
        self._keep_focus_in_view()

    def error_paths(self) -> List[str]:
        """Fields with a problem, in the form's order."""
        order = {p: i for i, p in enumerate(self.widget_paths)}
        return sorted((p for p in self.validation.by_field if p), key=lambda p: order.get(p, len(order)))

    def first_problem(self) -> Optional[Tuple[str, str]]:
        """(field, message) the pinned line shows: the focused field's problem, else the first."""
        paths = self.error_paths()
        if not paths:
            return (("config", str(self.validation.issues[0].message)) if self.validation.issues else None)
        path = self.focused_path if self.focused_path in paths else paths[0]
        return path, self.validation.by_field[path][0].message

    def _show_problem(self) -> None:
        """The pinned line above the help: never scrolls away, whatever the terminal's size."""
        line = self.query_one("#editor-problem", Static)
        problem = self.first_problem()
        line.display = problem is not None
        if problem is None:
            return
        count = len(self.validation.issues)
        more = f"1 of {count} problems; " if count > 1 else ""
        line.update(Text.assemble(("✗ ", "bold"), (f"{problem[0]}: ", "bold"), problem[1],
                                  (f"  ({more}ctrl+n goes there)", "dim")))

    def _keep_focus_in_view(self) -> None:
        """An edit can grow or shrink what is above the focused field (the summary, an error
        line): keep the field the user is typing in on screen."""
        focused = self.focused
        if focused is not None and self.form in focused.ancestors:
            self.call_after_refresh(self.form.scroll_to_widget, focused, animate=False)

    def set_field(self, path: str, value: Any) -> None:
        fm.set_path(self.data, path, value)
        self.revalidate()

    def overrides(self) -> List[str]:
        """The edit as override arguments relative to the baseline (valid configs only)."""
        if self.config is None:
            return []
        return configdiff.as_overrides(configdiff.diff(self.baseline_cfg, self.config))

    # ---- events from the form --------------------------------------------------------------------
    @on(FieldRow.Edited)
    def _edited(self, event: FieldRow.Edited) -> None:
        self.set_field(event.path, event.value)

    @on(SectionToggle.Toggled)
    def _toggled(self, event: SectionToggle.Toggled) -> None:
        spec = next(s for s in self.specs if s.path == event.path)
        if event.on:
            before = fm.get_path(self.baseline, event.path)
            value = copy.deepcopy(before) if before is not None else fm.section_defaults(spec.model)
        else:
            value = None
        fm.set_path(self.data, event.path, value)
        self.form.set_section_on(event.path, event.on, self.data)
        self.revalidate()

    @on(Button.Pressed, "#launch-button")
    def _launch_pressed(self) -> None:
        self.action_launch()

    @on(FieldRow.Focused)
    def _focused(self, event: FieldRow.Focused) -> None:
        self.focused_path = event.row.spec.path
        self._update_help()

    @on(EstimatesPanel.ApplyRemedy)
    def _apply_remedy(self, event: EstimatesPanel.ApplyRemedy) -> None:
        for path, value in event.remedy.changes.items():
            fm.set_path(self.data, path, copy.deepcopy(value))
        self.form.show_data(self.data)
        self.revalidate()
        self.notify(f"applied: {event.remedy.title}", timeout=3)

    def _update_help(self) -> None:
        path = self.focused_path
        if not path:
            return
        spec = next((s for s in self.specs if s.path == path), None)
        if spec is None:
            return
        text = f"{path}: {spec.description}"
        if path in set(self.changed()):
            text += f"  [preset: {fm.format_value(spec, fm.get_path(self.baseline, path)) or 'unset'}; ctrl+z undoes]"
        self._help(text)

    def _help(self, text: str) -> None:
        if text != getattr(self, "_help_text", None):
            self._help_text = text
            # Plain text, not markup: a value shown here (a list of paths: "[/data/a.npy]") is
            # not a closing tag. Fixed height: no layout pass.
            self.query_one("#field-help", Static).update(Text(text), layout=False)

    # ---- actions -----------------------------------------------------------------------------------
    def action_launch(self) -> None:
        if self._in_toml_mode() and not self._leave_toml():
            return
        if self.config is None:
            self.notify(self._blocked_message("launch"), severity="error", title="Launch blocked")
            return
        name = self.preset.name if self.preset else None
        self.launched = copy.deepcopy(self.data)
        self.app.launch(LaunchRequest(self.config, name, self.overrides(), self.parent_run_id))

    def _blocked_message(self, what: str) -> str:
        path, message = self.first_problem() or ("config", "invalid")
        count = len(self.validation.issues)
        others = f" (and {count - 1} more)" if count > 1 else ""
        return f"{path}: {message}{others}. Fix it to {what}: ctrl+n goes there."

    def action_sweep(self) -> None:
        """A sweep over the edited config: the dialog takes the axes (screens/sweep_dialog.py)."""
        if self._in_toml_mode() and not self._leave_toml():
            return
        if self.config is None:
            self.notify(self._blocked_message("start a sweep"), severity="error", title="Sweep blocked")
            return
        from .sweep_dialog import SweepDialog

        self.app.push_screen(SweepDialog(self.config, self.preset.name if self.preset else None))

    def action_save(self) -> None:
        if self._in_toml_mode() and not self._leave_toml():
            return
        if self.config is None:
            self.notify("fix the config's problems before saving it as a preset", severity="error")
            return
        default = f"{self.preset.name}-custom" if self.preset else self.config.run_name
        self.app.push_screen(SaveDialog(default, self.description), self._save_named)

    def _save_named(self, answer) -> None:
        if not answer:
            return
        name, description = answer
        self._save(name, description, overwrite=False)

    def _save(self, name: str, description: str, overwrite: bool) -> None:
        from olmo_tui.core.presets.preset_store import PresetExists, save_user_preset

        if self.preset is not None:
            changes = configdiff.diff(self.baseline_cfg, self.config)  # on top of the preset's text
        else:  # a run's config (relaunch): no source file, so write every section
            changes = self.config.model_dump(mode="json", exclude_none=True)
        try:
            path = save_user_preset(name, changes, source=self.preset, description=description or None,
                                    overwrite=overwrite)
        except PresetExists as exc:
            question = f"{exc.issues[0].message}.\nReplace it with this config?"
            self.app.push_screen(ConfirmDialog(question),
                                 lambda yes: yes and self._save(name, description, overwrite=True))
            return
        except OSError as exc:
            self.notify(f"cannot save: {exc.strerror}", severity="error")
            return
        self.notify(f"saved {path}", title="Preset saved")
        self.launched = copy.deepcopy(self.data)  # kept in the preset: nothing to lose on closing
        self._check_saved(name)
        self.app.preset_saved(name)

    def _check_saved(self, name: str) -> None:
        """Read the saved preset back; TOML cannot unset a section inherited via `extends`,
        so say which fields will not come back as edited."""
        from engine.config import ConfigError, resolve

        try:
            saved = resolve(name)
        except ConfigError as exc:
            self.notify(f"the saved preset does not validate: {exc}", severity="error", timeout=10)
            return
        differs = configdiff.diff(self.config, saved)
        if differs:
            self.notify("the saved preset differs at " + ", ".join(differs) + " (a section unset here is "
                        "inherited again through `extends`: switch it off by hand in the file or edit a copy "
                        "without `extends`)", severity="warning", timeout=12)

    def action_diff(self) -> None:
        if self.config is not None:
            lines = self.overrides()
            body = "\n".join(lines) if lines else "(no change from the preset)"
            if lines and (self.preset or self.parent_run_id):
                from olmo_tui.core.launch.command_preview import headless_command

                request = LaunchRequest(self.config, self.preset.name if self.preset else None, lines,
                                        self.parent_run_id)
                body += "\n\nAs a headless command:\n" + shlex.join(headless_command(request))
        else:
            changed = self.changed()
            body = "The config is invalid; raw edits so far:\n" + "\n".join(
                f"--{p}={fm.format_value(self._spec(p), fm.get_path(self.data, p))}" for p in changed)
        show_text(self.app, "Changes as override arguments", body, "diff")

    def _spec(self, path: str) -> fm.FieldSpec:
        return next(s for s in self.specs if s.path == path)

    def action_undo_field(self) -> None:
        path = self.focused_path
        if not path or self._in_toml_mode():
            self.notify("focus a field first", severity="warning")
            return
        fm.set_path(self.data, path, copy.deepcopy(fm.get_path(self.baseline, path)))
        self.form.show_data(self.data)
        self.revalidate()

    def action_revert_all(self) -> None:
        self.data = copy.deepcopy(self.baseline)
        self.form.show_data(self.data)
        self.revalidate()

    @on(ConfigForm.SectionBuilt)
    def _section_built(self) -> None:
        self.form.show_state(self.validation, self.changed(), self.data)

    async def action_next_error(self) -> None:
        paths = self.error_paths()
        if not paths:
            self.notify("no errors")
            return
        order = {p: i for i, p in enumerate(self.widget_paths)}
        current = order.get(self.focused_path or "", -1)
        target = next((p for p in paths if order.get(p, -1) > current), paths[0])
        if self._in_toml_mode() and not self._leave_toml():
            return
        await self.form.focus_field(target)

    def action_toggle_estimates(self) -> None:
        panel = self.query_one(EstimatesPanel)
        panel.display = not panel.display

    def action_remedy(self, index: int) -> None:
        if not self.query_one(EstimatesPanel).apply(index):
            self.notify("no such remedy: memory fits (or no accelerator set)", severity="warning")

    def action_back(self) -> None:
        if self.changed():
            self.app.push_screen(ConfirmDialog("Leave the editor and drop your changes?"),
                                 lambda yes: yes and self.app.pop_screen())
        else:
            self.app.pop_screen()

    def action_help(self) -> None:
        keys = [("tab/shift+tab", "next / previous field"),
                ("enter", "on Launch: launch; on a section title: fold/unfold; on a select: open it"),
                ("ctrl+l", "launch (blocked while invalid)"),
                ("ctrl+g", "sweep: launch variants of this config over grid / paired axes"),
                ("ctrl+s", "save as a user preset"),
                ("ctrl+o", "diff: the changes as --a.b=v overrides"), ("ctrl+t", "raw TOML mode on/off"),
                ("ctrl+z", "undo the focused field (back to the preset's value)"),
                ("ctrl+n", "jump to the next error"), ("ctrl+b", "show/hide the estimates panel"),
                ("f5-f8", "apply a memory remedy"), ("ctrl+p", "command palette"), ("esc", "back to presets")]
        extra = ""
        if self.focused_path:
            extra = f"Focused field {self.focused_path}:\n{self._spec(self.focused_path).description}"
        show_text(self.app, "Help: editor", help_text("editor", self.HELP, keys, extra), "help")

    # ---- raw TOML mode -------------------------------------------------------------------------------
    def _in_toml_mode(self) -> bool:
        return self.query_one(ContentSwitcher).current == "toml"

    def action_toggle_toml(self) -> None:
        if self._in_toml_mode():
            self._leave_toml()
        else:
            import tomlkit

            area = self.query_one("#toml", TextArea)
            area.text = tomlkit.dumps(fm.strip_nones(self.data))
            self.query_one(ContentSwitcher).current = "toml"
            area.focus()

    def _leave_toml(self) -> bool:
        area = self.query_one("#toml", TextArea)
        try:
            parsed = tomllib.loads(area.text)
        except tomllib.TOMLDecodeError as exc:
            self.notify(f"invalid TOML: {exc}", severity="error", title="Still in TOML mode")
            return False
        self.data = fm.fill_defaults(parsed, self.schema)
        self.query_one(ContentSwitcher).current = "form"
        self.form.show_data(self.data)
        self.revalidate()
        return True

    @on(TextArea.Changed, "#toml")
    def _toml_changed(self, event: TextArea.Changed) -> None:
        try:
            parsed = tomllib.loads(event.text_area.text)
        except tomllib.TOMLDecodeError as exc:
            self._help(f"TOML: {exc}")
            return
        validation = fm.validate_form(fm.fill_defaults(parsed, self.schema), self.widget_paths)
        message = "TOML: valid config" if validation.ok else "TOML: " + "; ".join(map(str, validation.issues))
        self._help(message)

    def palette_commands(self):
        yield ("Launch", "Launch this config (ctrl+l)", self.action_launch)
        yield ("Sweep", "Launch variants of this config over grid / paired axes (ctrl+g)", self.action_sweep)
        yield ("Save as user preset", "ctrl+s", self.action_save)
        yield ("Show diff as overrides", "ctrl+o", self.action_diff)
        yield ("Toggle raw TOML mode", "ctrl+t", self.action_toggle_toml)
        yield ("Undo focused field", "ctrl+z", self.action_undo_field)
        yield ("Revert all changes", "Back to the preset's values", self.action_revert_all)
        yield ("Next error", "ctrl+n", self.action_next_error)
        yield ("Toggle estimates panel", "ctrl+b", self.action_toggle_estimates)
        yield ("Help: editor", "f1", self.action_help)
        for i, remedy in enumerate(self.query_one(EstimatesPanel).remedies):
            yield (f"Apply remedy: {remedy.title}", REMEDY_KEYS[i], lambda i=i: self.action_remedy(i))
        for spec in self.specs:
            yield (f"Go to field {spec.path}", spec.description, lambda p=spec.path: self.run_worker(self.form.focus_field(p)))
