"""Time from starting `olmo-tui` to its first interactive screen (the preset browser with its
list and detail pane filled). Target: under 0.5 s, which rules out importing torch at start.

Two measurements, each the median of --runs fresh processes (interpreter start included):
- headless: `python -m olmo_tui`'s app run headless; the child prints the wall clock when the
  browser is ready; the parent subtracts the time it spawned the child.
- tmux (when tmux is installed): the real app in a real 80x24 terminal; the parent polls
  capture-pane every 10 ms until the detail pane shows, so the figure is the time a user waits.

Also reported: the child's CPU time until ready (what start-up costs on an idle machine) and
the 1-minute load average (a shared machine inflates wall times).

Usage: .venv/bin/python benchmarks/app_startup.py [--runs 7] [--no-tmux]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

CHILD = r"""
import sys, time
from olmo_tui.app.app import OlmoTuiApp
from olmo_tui.app.screens.presets import PresetBrowser

async def ready(pilot):
    app = pilot.app
    while not (isinstance(app.screen, PresetBrowser) and app.screen.selected_name):
        await pilot.pause(0.005)
    print(repr(time.time()), "torch" in sys.modules, repr(time.process_time()), flush=True)
    app.exit()

OlmoTuiApp().run(headless=True, size=(80, 24), auto_pilot=ready)
"""

# Baseline measured the same way: the smallest Textual app (one Static), i.e. the floor that
# importing and starting Textual itself costs on this machine.
MINIMAL = r"""
import sys, time
from textual.app import App
from textual.widgets import Static

class Minimal(App):
    def compose(self):
        yield Static("hello")

async def ready(pilot):
    await pilot.pause()
    print(repr(time.time()), "torch" in sys.modules, repr(time.process_time()), flush=True)
    pilot.app.exit()

Minimal().run(headless=True, size=(80, 24), auto_pilot=ready)
"""


def headless_once(code: str = CHILD) -> tuple:
    """(wall seconds to ready, torch imported?, CPU seconds the child used until ready)."""
    start = time.time()
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    ready, torch_loaded, cpu = out.stdout.split()[:3]
    return float(ready) - start, torch_loaded == "True", float(cpu)


def tmux_once(run: int) -> float:
    socket = f"olmo-tui-bench-{os.getpid()}-{run}"  # a fresh server each run
    tmux = ["tmux", "-L", socket]
    start = time.time()
    subprocess.run(tmux + ["-f", "/dev/null", "new-session", "-d", "-s", "bench", "-x", "80", "-y", "24",
                           f"cd {REPO} && {sys.executable} -m olmo_tui"], check=True)
    try:
        while time.time() - start < 30:
            pane = subprocess.run(tmux + ["capture-pane", "-p", "-t", "bench"], capture_output=True, text=True).stdout
            if "layers x width" in pane:
                return time.time() - start
            time.sleep(0.01)
        raise RuntimeError("the browser did not show within 30 s")
    finally:
        subprocess.run(tmux + ["kill-server"], capture_output=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--no-tmux", action="store_true")
    args = parser.parse_args()
    headless, minimal = [], []
    for _ in range(args.runs):  # interleaved, so both see the same machine load
        headless.append(headless_once())
        minimal.append(headless_once(MINIMAL))
    result = {
        "headless_s": [round(t, 3) for t, _, _ in headless],
        "headless_median_s": round(statistics.median(t for t, _, _ in headless), 3),
        # CPU time is what start-up costs on an idle machine; wall time also counts waiting
        # for a core when the machine is shared.
        "headless_cpu_median_s": round(statistics.median(c for _, _, c in headless), 3),
        "torch_imported": any(loaded for _, loaded, _ in headless),
        "minimal_textual_app_median_s": round(statistics.median(t for t, _, _ in minimal), 3),
        "minimal_textual_app_cpu_median_s": round(statistics.median(c for _, _, c in minimal), 3),
        "load_average_1min": round(os.getloadavg()[0], 1),
    }
    if shutil.which("tmux") and not args.no_tmux:
        tmux = [tmux_once(run) for run in range(args.runs)]
        result["tmux_80x24_s"] = [round(t, 3) for t in tmux]
        result["tmux_80x24_median_s"] = round(statistics.median(tmux), 3)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
