"""The runs table's actions at 80x24 (GUIDE, "Monitoring runs"): a run started headless is in
the table with every column that matters; filter and esc; resume (R) from its checkpoint as a
child run; home / end and l between the two; forget (d). The registry is checked after."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from journey_helpers import cancel_leftovers, wait_runs, write_user_preset
from journey_terminal import REPO, Terminal, requires_tmux

pytestmark = requires_tmux


def test_runs_table_filter_resume_home_end_forget(isolated_xdg):
    write_user_preset("journey", steps=4, save=2)
    done = subprocess.run([sys.executable, "-m", "olmo_tui", "--preset", "journey"], cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    (parent,) = wait_runs(lambda runs: len(runs) == 1 and runs[0].status == "succeeded", what="the run")
    term = Terminal(80, 24)
    try:
        term.wait_for("layers x width", what="the preset browser")
        # Keys sent before the first screen has its keys (its footer shows them all) are lost.
        term.wait_for("q Quit", what="the presets' keys in the footer")
        term.press("r")
        screen = term.wait_for(parent.id[-12:], what="the run in the table")
        header = next(line for line in screen.splitlines() if "Status" in line)
        assert all(name in header for name in ("Step", "Loss", "Tok/s", "MFU", "Age")), header
        row = next(line for line in screen.splitlines() if parent.id[-12:] in line)
        assert re.search(r"succeeded\s+4/4\s+\d+\.\d+\s+\d+(\.\d)?K?\s", row), row  # tok/s: "931" or "1.1K"
        term.save("runs-table")

        # Filter: no match empties the table, esc brings every run back.
        term.press("/")
        term.settle()  # the filter box takes the focus a frame later (Textual focuses after a refresh)
        term.type("no-such-run")
        term.wait_gone(parent.id[-12:])
        term.press("Escape")
        term.wait_for(parent.id[-12:])
        term.type("?")
        term.wait_for("Help: runs")
        term.press("Escape")
        term.wait_gone("Help: runs")

        # Resume: asks, then a child run continues from the parent's checkpoint.
        term.press("R")
        term.wait_for(f"Resume {parent.id} from step")
        term.press("y")
        runs = wait_runs(lambda runs: len(runs) == 2 and all(r.terminal for r in runs), timeout=180,
                         what="the resumed run to finish")
        child = next(r for r in runs if r.id != parent.id)
        assert child.parent_id == parent.id and child.relation == "resume" and child.status == "succeeded"
        term.wait_for(f"run {child.id}", what="the child's monitor")
        term.wait_for("weights: resuming from", what="the engine's resume line")
        term.press("i")  # the header cuts its lines at 80 columns: i shows them whole
        term.wait_for(f"parent: {parent.id} (resume)")
        term.press("Escape")
        term.wait_gone("parent: ")
        term.press("q")
        term.wait_for(lambda s: child.id[-12:] in s and parent.id[-12:] in s, what="both runs in the table")

        # home / end move between the first and last rows (newest first): l opens that run.
        term.press("End")
        term.settle()
        term.press("l")
        term.wait_for(f"run {parent.id}")
        term.press("q")
        term.wait_for(child.id[-12:])
        term.press("Home")
        term.settle()
        term.press("l")
        term.wait_for(f"run {child.id}")
        term.press("q")

        # Forget the child and delete its files: gone from the table, the registry and the disk.
        term.wait_for(child.id[-12:])
        term.press("d")
        term.wait_for(f"Forget run {child.id}?")
        term.press("y")
        term.wait_for("Also delete its files?")
        term.press("y")
        (left,) = wait_runs(lambda runs: len(runs) == 1, what="the forgotten run gone")
        assert left.id == parent.id and not Path(child.run_dir).exists()
        term.wait_gone(child.id[-12:])
    finally:
        term.close()
        cancel_leftovers()
