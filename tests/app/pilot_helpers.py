"""Helpers for driving the real app with Pilot: open a preset in the editor, type into a field
as a user would (focus, clear, keys), read what a field shows; and the app tests' fixtures.

Not a conftest.py: another conftest would shadow tests/conftest.py for `from conftest import
...` in the rest of the suite. Test modules import the fixtures they use from here."""

from __future__ import annotations

import time

import pytest
from textual.widgets import Input

from olmo_tui.app.app import OlmoTuiApp
from olmo_tui.app.screens.editor import EditorScreen


async def wait_for(pilot, predicate, timeout: float = 30.0) -> None:
    """Let the app run until `predicate()` holds; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        await pilot.pause(0.05)
    raise AssertionError("condition not reached")


@pytest.fixture(autouse=True)
def quiet_terminal(monkeypatch):
    """Same screen on every machine: no animations, no colour hint from the outer terminal."""
    monkeypatch.setenv("TEXTUAL_ANIMATIONS", "none")
    monkeypatch.delenv("NO_COLOR", raising=False)


@pytest.fixture
def app() -> OlmoTuiApp:
    return OlmoTuiApp()


def no_blink(app) -> None:
    """Freeze cursors so snapshots do not depend on when they are taken."""
    for widget in app.screen.query(Input):
        widget.cursor_blink = False


async def open_editor(pilot, preset: str) -> EditorScreen:
    await pilot.pause()
    pilot.app.open_preset(preset)
    await pilot.pause()
    screen = pilot.app.screen
    assert isinstance(screen, EditorScreen)
    return screen


async def type_into(pilot, screen: EditorScreen, path: str, text: str, keys: bool = False) -> None:
    """Focus the field's text input and replace its text. With keys=True, clear it and type
    `text` key by key; otherwise paste it (one Input.Changed, as a paste gives: each key press
    costs a layout pass of the screen, which adds up on a 2-core CI machine)."""
    await screen.form.focus_field(path)
    await pilot.pause()
    field = screen.form.rows[path].query(Input).first()
    field.focus()
    if keys:
        await pilot.press("end", "ctrl+u", *[_key(c) for c in text])
    else:
        field.value = text
    await pilot.pause()


def _key(char: str) -> str:
    return {" ": "space", ".": "full_stop", "-": "minus", "+": "plus", "_": "underscore"}.get(char, char)


def field_error(screen: EditorScreen, path: str) -> str:
    from textual.widgets import Static

    row = screen.form.rows[path]
    return str(row.query_one(".field-error", Static).render()) if row.has_class("-invalid") else ""


async def monitor_extra(pilot, run_id: str, step: int) -> str:
    """Open the monitor of a registered run, wait until its throughput panel has the metrics of
    `step`, and return the lines under the panel (#tp-extra)."""
    from olmo_tui.app.screens.monitor import MonitorScreen
    from olmo_tui.app.widgets.throughput import ThroughputPanel
    from olmo_tui.core.runs.registry import Registry

    await pilot.pause()
    await pilot.app.push_screen(MonitorScreen(Registry().get(run_id)))
    throughput = pilot.app.screen.query_one(ThroughputPanel)
    await wait_for(pilot, lambda: throughput.latest.get("step") == step)
    throughput.redraw()
    return str(pilot.app.screen.query_one("#tp-extra").render())
