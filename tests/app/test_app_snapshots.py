"""SVG snapshots (pytest-textual-snapshot) of the preset browser, the editor showing an error
and the estimates panel with memory remedies. Update after a deliberate UI change with
`.venv/bin/pytest tests/app/test_app_snapshots.py --snapshot-update` and review the SVGs."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from olmo_tui.app.app import OlmoTuiApp
from pilot_helpers import no_blink, open_editor, quiet_terminal, type_into  # noqa: F401 (fixture)

REPO_PRESETS = Path(__file__).resolve().parents[2] / "presets"
SHOWN = ("tiny-cpu", "llama2-271m", "olmo2-base", "olmo2-7b")


@pytest.fixture(autouse=True)
def fixed_preset_set(tmp_path, monkeypatch):
    """A fixed set of the real presets, so a preset added to the repo does not change the
    browser's picture; run from their parent so paths read presets/NAME.toml."""
    folder = tmp_path / "presets"
    folder.mkdir()
    for name in SHOWN:
        shutil.copy(REPO_PRESETS / f"{name}.toml", folder)
    monkeypatch.setenv("OLMO_TUI_PRESETS_DIR", str(folder))
    monkeypatch.chdir(tmp_path)


def test_browser_snapshot(snap_compare):
    async def settle(pilot):
        await pilot.pause()
        no_blink(pilot.app)

    assert snap_compare(OlmoTuiApp(), terminal_size=(80, 24), run_before=settle)


def test_editor_with_cross_field_error_snapshot(snap_compare):
    async def edit(pilot):
        editor = await open_editor(pilot, "tiny-cpu")
        await type_into(pilot, editor, "data_loader.global_batch_size", "3000")
        no_blink(pilot.app)
        await pilot.pause()

    assert snap_compare(OlmoTuiApp(), terminal_size=(80, 24), run_before=edit)


def test_estimates_panel_with_remedies_snapshot(snap_compare):
    async def edit(pilot):
        await open_editor(pilot, "olmo2-7b")
        no_blink(pilot.app)
        await pilot.pause()

    assert snap_compare(OlmoTuiApp(), terminal_size=(110, 34), run_before=edit)
