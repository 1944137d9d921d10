"""The preset browser and app-wide behaviour: filter, detail pane, help, command palette,
user presets listed, resize, NO_COLOR."""

from __future__ import annotations

import os
from pathlib import Path

from textual.widgets import OptionList, Static

from olmo_tui.app.app import OlmoTuiApp
from olmo_tui.app.screens.dialogs import TextDialog
from olmo_tui.app.screens.editor import EditorScreen
from olmo_tui.app.screens.presets import PresetBrowser
from pilot_helpers import app, quiet_terminal  # noqa: F401 (fixtures)


def detail(app) -> str:
    return str(app.screen.query_one("#preset-detail", Static).render())


def listed(app) -> list:
    options = app.screen.query_one("#preset-list", OptionList)
    return [options.get_option_at_index(i).id for i in range(options.option_count)]


async def test_filter_detail_and_edit(app):
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        assert isinstance(app.screen, PresetBrowser)
        assert {"tiny-cpu", "olmo2-7b", "llama2-271m"} <= set(listed(app))
        await pilot.press("slash", *"olmo2-1")
        await pilot.pause()
        assert listed(app) == ["olmo2-13b", "olmo2-1b"]
        await pilot.press("enter", "down")
        await pilot.pause()
        text = detail(app)
        for landmark in ("olmo2-1b", "family", "olmo2", "layers x width", "16 x 2048", "seq len", "4,096",
                         "tokens/step", "4,194,304", "GPUs", "8 x H100", "parallelism", "FSDP bf16", "data"):
            assert landmark in text
        await pilot.press("escape")
        await pilot.pause()
        assert len(listed(app)) >= 9
        app.screen.query_one("#preset-list", OptionList).highlighted = listed(app).index("tiny-cpu")
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, EditorScreen) and app.screen.preset.name == "tiny-cpu"
        await pilot.press("escape")  # no changes: straight back
        await pilot.pause()
        assert isinstance(app.screen, PresetBrowser)


async def test_user_presets_are_listed_and_invalid_ones_say_why(app):
    folder = Path(os.environ["XDG_CONFIG_HOME"]) / "olmo-tui" / "presets"
    folder.mkdir(parents=True)
    (folder / "mine.toml").write_text('extends = "tiny-cpu"\ndescription = "my run"\n[model]\nn_layers = 2\n')
    (folder / "broken.toml").write_text('extends = "tiny-cpu"\n[model]\nn_layers = "many"\n')
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        names = listed(app)
        assert "mine" in names and "broken" in names
        options = app.screen.query_one("#preset-list", OptionList)
        options.highlighted = names.index("broken")
        await pilot.pause()
        assert "INVALID" in detail(app) and "model.n_layers" in detail(app)
        await pilot.press("enter")  # an invalid preset does not open
        await pilot.pause()
        assert isinstance(app.screen, PresetBrowser)
        options.highlighted = names.index("mine")
        await pilot.pause()
        assert "(user preset)" in detail(app) and "4 x 128" not in detail(app) and "2 x 128" in detail(app)


async def test_contextual_help_and_command_palette(app):
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        await pilot.press("question_mark")
        await pilot.pause()
        assert isinstance(app.screen, TextDialog)
        assert "filter the list" in str(app.screen.query_one(".dialog-text").render())
        await pilot.press("escape")
        await pilot.pause()
        titles = [c.title for c in app.get_system_commands(app.screen)]
        assert {"Edit selected preset", "Launch selected preset", "Filter presets", "Edit preset olmo2-7b"} <= set(titles)
        app.open_preset("tiny-cpu")
        await pilot.pause()
        titles = [c.title for c in app.get_system_commands(app.screen)]
        for action in ("Launch", "Save as user preset", "Show diff as overrides", "Toggle raw TOML mode",
                       "Undo focused field", "Next error", "Go to field model.d_model"):
            assert action in titles
        await pilot.press("f1")
        await pilot.pause()
        assert "raw TOML mode" in str(app.screen.query_one(".dialog-text").render())
        await pilot.press("escape")
        # The palette opens and runs a command picked by typing.
        await pilot.press("ctrl+p")
        await pilot.pause()
        await pilot.press(*"Show diff as")
        await wait_until(pilot, lambda: "Show diff as overrides" in _palette_top(app))  # searched in a worker
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, TextDialog))
        assert app.screen.id == "diff"


def _palette_top(app) -> str:
    from textual.command import CommandList

    found = app.screen.query(CommandList)
    if not found or not found.first().option_count:
        return ""
    return str(found.first().get_option_at_index(0).prompt)


async def wait_until(pilot, condition, seconds: float = 10.0) -> None:
    for _ in range(int(seconds / 0.05)):
        if condition():
            return
        await pilot.pause(0.05)
    assert condition()


async def test_resize_to_tiny_and_large_does_not_crash(app):
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        for size in ((30, 8), (200, 60), (80, 24)):
            await pilot.resize_terminal(*size)
            await pilot.pause()
        app.open_preset("tiny-cpu")
        await pilot.pause()
        for size in ((30, 8), (160, 50), (80, 24)):
            await pilot.resize_terminal(*size)
            await pilot.pause()
        await pilot.press("ctrl+b")  # hide estimates: the form gets the width
        await pilot.pause()
        assert not app.screen.query_one("#estimates").display


async def test_no_color_environment_is_honoured(monkeypatch):
    monkeypatch.setenv("NO_COLOR", "1")
    app = OlmoTuiApp()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        assert app.no_color
        app.open_preset("tiny-cpu")
        await pilot.pause()
        # State never depends on colour alone: switches say on/off, errors carry a mark.
        assert "off" in str(app.screen.form.rows["model.qk_norm"].query_one(".switch-state").render())
