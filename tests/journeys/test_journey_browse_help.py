"""Browse, filter and help at both sizes (GUIDE, "The app"): `/` filters the presets, esc clears
the filter and keeps the preset that was highlighted, `?` / f1 explain every screen."""

from __future__ import annotations

import pytest

from journey_helpers import SIZES, write_user_preset
from journey_terminal import Terminal, requires_tmux

pytestmark = requires_tmux


@pytest.mark.parametrize("width,height", SIZES, ids=[f"{w}x{h}" for w, h in SIZES])
def test_browse_filter_keeps_selection_and_help_everywhere(isolated_xdg, width, height):
    write_user_preset("journey", steps=3)
    with Terminal(width, height) as term:
        term.wait_for("layers x width", what="the preset browser")
        # Keys sent before the first screen has its keys (its footer shows them all) are lost.
        term.wait_for("q Quit", what="the presets' keys in the footer")
        term.check_fits()
        term.press("/")
        term.settle()  # the filter box takes the focus a frame later (Textual focuses after a refresh)
        term.type("journey")
        term.wait_for("shortened for the journeys")
        term.press("Escape")  # clears the filter: every preset again, journey still highlighted
        screen = term.wait_for("olmo2-7b", what="the whole list back")
        assert "shortened for the journeys" in screen, screen
        term.type("?")
        term.wait_for("Help: presets")
        term.press("Escape")
        term.wait_gone("Help: presets")

        term.press("Enter")
        term.wait_for("editing preset journey")
        term.press("F1")
        term.wait_for("Help: editor")
        term.press("Escape")
        term.wait_gone("Help: editor")
        term.press("Escape")  # no changes: straight back to the presets
        term.wait_for("layers x width")

        term.press("r")
        term.wait_for("No runs yet")
        term.press("F1")
        term.wait_for("Help: runs")
        term.press("Escape")
        term.wait_gone("Help: runs")
        term.check_fits()
