"""Fixtures of the app tests: a fresh app, and a terminal that is the same on every machine."""

from __future__ import annotations

import pytest

from olmo_tui.app.app import OlmoTuiApp


@pytest.fixture(autouse=True)
def _quiet_terminal(monkeypatch):
    # Same screen on every machine: no animations, and no colour hints from the outer terminal.
    monkeypatch.setenv("TEXTUAL_ANIMATIONS", "none")
    monkeypatch.delenv("NO_COLOR", raising=False)


@pytest.fixture
def app() -> OlmoTuiApp:
    return OlmoTuiApp()
