"""A sweep from the editor at 160x48 (GUIDE, "Sweeps": `ctrl+g` in the editor): the dialog takes
a grid axis, previews the variants, `ctrl+l` queues them and the runs table shows the queue;
the sweep's worker runs both, and the registry holds them as one sweep."""

from __future__ import annotations

from journey_helpers import cancel_leftovers, wait_runs, write_user_preset
from journey_terminal import Terminal, requires_tmux

pytestmark = requires_tmux


def test_sweep_from_the_editor(isolated_xdg):
    write_user_preset("journey", steps=2)
    term = Terminal(160, 48)
    try:
        term.wait_for("layers x width", what="the preset browser")
        term.wait_for("q Quit", what="the presets' keys in the footer")
        term.press("/")
        term.settle()
        term.type("journey")
        term.wait_for("shortened for the journeys")
        term.press("Enter")
        term.settle()
        term.press("Enter")
        term.wait_for("editing preset journey")
        term.press("C-g")
        term.wait_for("ctrl+l queues the sweep", what="the sweep dialog, its hint in view")
        term.settle()
        term.type("init_seed=0,1")
        term.wait_for("2 runs, at most 1 at once", what="the variants' preview")
        term.press("C-l")
        term.wait_for("runs queued")
        term.wait_for("olmo-tui — runs")
        runs = wait_runs(lambda runs: len(runs) == 2 and all(r.status == "succeeded" for r in runs),
                         timeout=240, what="both variants to finish")
        assert len({r.sweep for r in runs}) == 1 and runs[0].sweep
        screen = term.wait_for(lambda s: s.count("succeeded") == 2, what="both variants in the table")
        assert runs[0].sweep in screen or all(r.id in screen for r in runs), screen  # 160 columns: ids whole
        term.check_fits()
    finally:
        term.close()
        cancel_leftovers()
