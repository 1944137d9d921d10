"""The app's main walk (docs/GUIDE.md, "The app" and "Monitoring runs") at 80x24: browse, filter,
edit, an invalid value read and fixed, launch, monitor, cancel, relaunch with an edit from the
monitor (`r`), compare the two runs and read their config diff. One parent run (cancelled) and
one child (a few steps) serve every step."""

from __future__ import annotations

import re
from pathlib import Path

from journey_helpers import cancel_leftovers, wait_runs, write_user_preset
from journey_terminal import Terminal, flat, requires_tmux

pytestmark = requires_tmux


def field_marked(screen: str, name: str) -> bool:
    """The form row of field NAME, then its error line (✗) right below it."""
    lines = screen.splitlines()
    return any(re.match(rf"\s*(● )?{name}\s", line) and i + 1 < len(lines) and "✗" in lines[i + 1]
               for i, line in enumerate(lines))


def test_edit_launch_monitor_cancel_relaunch_compare(isolated_xdg):
    preset = write_user_preset("journey", steps=5000, save=3)
    term = Terminal(80, 24)
    try:
        # Browse and filter: the user preset is found by name.
        term.wait_for("layers x width", what="the preset browser")
        # Keys sent before the first screen has its keys (its footer shows them all) are lost.
        term.wait_for("q Quit", what="the presets' keys in the footer")
        term.press("/")
        term.settle()  # the filter box takes the focus a frame later (Textual focuses after a refresh)
        term.type(preset)
        term.wait_for("shortened for the journeys")
        term.press("Enter")  # the filter keeps its text; focus goes back to the list
        term.settle()
        term.press("Enter")
        term.wait_for("editing preset journey")
        term.wait_for("valid config")

        # An invalid value: a cross-field rule. The problem and its fields stay in view at 80x24.
        term.goto_field("model.n_heads")
        term.replace_text("3")
        screen = term.wait_for("must be divisible by n_heads (3)", what="the cross-field message")
        # The pinned line names the field and the message; both fields the rule names are marked.
        assert re.search(r"✗ model\.n_heads: d_model \(128\) must be divisible by n_heads \(3\)", screen), screen
        term.wait_for(lambda text: field_marked(text, "n_heads") and field_marked(text, "d_model"),
                      what="both fields of the rule marked")
        term.save("editor-cross-field-error")
        term.press("C-l")  # refused, and the refusal names the problem
        term.wait_for("Launch blocked")
        term.replace_text("4")
        term.wait_gone("ctrl+n goes there")  # the pinned problem line: none left
        term.wait_gone("must be divisible")

        # Launch: the dialog shows the command, enter starts the run, its monitor opens.
        term.press("C-l")
        term.wait_for("olmo-tui --preset journey")
        term.press("Enter")
        term.wait_for(re.compile(r"run tiny-cpu-\d{8}-\d{6}-\w{4}"), what="the monitor")
        (parent,) = wait_runs(lambda runs: len(runs) == 1 and runs[0].status == "running", what="the parent")
        # Training, with a checkpoint to resume from (every 3 steps).
        term.wait_for(re.compile(r"step \d+ / 5000"), timeout=120, what="the first metrics")
        screen = term.wait_for(re.compile(r"checkpoint: step\d+"), timeout=60, what="a checkpoint in the header")
        term.check_fits()
        # Compact at 80x24: a 3-row header, the log at least half the width, the run's keys shown.
        lines = screen.splitlines()
        assert lines[2].lstrip().startswith("command:") and lines[4].count("│") == 1, screen
        assert 80 - lines[6].index("│") - 1 >= 40, screen
        assert all(key in lines[-1] for key in ("c Cancel", "r Relaunch", "R Resume")), lines[-1]
        term.save("monitor")
        term.type("?")
        term.wait_for("Help: run monitor")
        term.press("Escape")
        term.wait_gone("Help: run monitor")

        # Cancel from the monitor: asked first, then the run stops gracefully; no traceback noise.
        term.press("c")
        term.wait_for("Cancel " + parent.id)
        term.press("y")
        wait_runs(lambda runs: runs[0].status == "cancelled", timeout=120, what="the cancel")
        term.wait_for("cancelled")
        term.press("w")  # the log over the whole width: its last lines say how to resume
        screen = term.wait_for(re.compile(r"stopped by SIGTERM at step \d+; resume w"), what="the engine's last line")
        assert "ChildFailedError" not in screen and "rerun the same command" not in screen, screen
        log = (Path(parent.run_dir) / "stdout.log").read_text()  # the line in full (the screen cuts it)
        assert f"resume with: olmo-tui relaunch {parent.id} --resume" in log

        # Relaunch with an edit, from the monitor (r): the editor holds the parent's config.
        term.press("r")
        term.wait_for("relaunch of " + parent.id)
        term.goto_field("trainer.max_duration")
        term.replace_text("3")
        term.wait_for(re.compile(r"max_duration +3 +steps"))
        term.wait_gone("ctrl+n goes there")  # the pinned problem line: none left
        term.press("C-l")
        screen = term.wait_for("Launch this config")
        assert f"olmo-tui relaunch {parent.id} --trainer.max_duration" in flat(screen), screen
        term.press("Enter")
        runs = wait_runs(lambda runs: len(runs) == 2 and any(r.parent_id == parent.id for r in runs),
                         what="the child run")
        child = next(r for r in runs if r.parent_id == parent.id)
        assert child.relation == "relaunch"
        term.wait_for("run " + child.id)
        wait_runs(lambda runs: all(r.terminal for r in runs), timeout=120, what="the child to finish")
        term.wait_for("succeeded")

        # Compare the two from the runs table: legend names each run distinctly, then the diff.
        term.palette("Runs")
        # At 80 columns the Run column shortens ids in the middle: their ends tell them apart.
        term.wait_for(lambda screen: child.id[-12:] in screen and parent.id[-12:] in screen,
                      what="both runs in the table")
        term.press("Space")
        term.wait_for("● ")
        term.press("Down", "Space")
        term.wait_for(lambda screen: screen.count("● ") == 2, what="two runs marked")
        term.press("C")
        screen = term.wait_for("baseline", what="the compare legend")
        legend = [line for line in screen.splitlines() if "━━" in line]
        assert len(legend) == 2 and len({re.sub(r"\s+", " ", line.split("━━ ")[1]).split(" (")[0]
                                         for line in legend}) == 2, screen
        term.wait_for("--trainer.max_duration", what="the config diff below the plots")
        term.press("Escape")
        term.wait_for("Compare")  # back in the runs table
    finally:
        term.close()
        cancel_leftovers()
