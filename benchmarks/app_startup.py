"""Start-up time of the two front doors: `olmo-tui --preset llama2-271m --dry-run` (headless) and
`olmo-tui` to its first interactive screen (the preset browser with its list and detail pane
filled). Exits 1, saying which, when the best of --runs of either is over --limit (0.5 s): run
it after changing imports (not a timed unit test: a shared machine would make that flaky).

Measurements, each over --runs fresh processes (interpreter start included; best and median):
- dry-run: wall time of the whole command, output to /dev/null;
- headless: `python -m olmo_tui`'s app run headless; the child prints the wall clock when the
  browser is ready; the parent subtracts the time it spawned the child;
- tmux (when tmux is installed): the real app in a real 80x24 terminal; the parent polls
  capture-pane every 10 ms until the detail pane shows, so the figure is the time a user waits.
  The limit applies to it (to the headless figure without tmux).

Also reported: the child's CPU time until ready (what start-up costs on an idle machine) and
the 1-minute load average (a shared machine inflates wall times: compare best-of-N figures).

Usage: .venv/bin/python benchmarks/app_startup.py [--runs 7] [--no-tmux] [--limit 0.5] [--repo DIR]
(--repo measures another checkout with this venv, e.g. an older commit in a git worktree.)
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
import olmo_tui.cli  # what `olmo-tui` imports before it opens the app
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


DRY_RUN = ["--preset", "llama2-271m", "--dry-run"]


def child_env() -> dict:
    """The repo measured first on the path (--repo), private XDG dirs untouched otherwise."""
    return {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)}


def dry_run_once() -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "olmo_tui", *DRY_RUN], stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, cwd=REPO, env=child_env(), check=True)
    return time.perf_counter() - start


def headless_once(code: str = CHILD) -> tuple:
    """(wall seconds to ready, torch imported?, CPU seconds the child used until ready)."""
    start = time.time()
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True,
                         env=child_env())
    ready, torch_loaded, cpu = out.stdout.split()[:3]
    return float(ready) - start, torch_loaded == "True", float(cpu)


def tmux_once(run: int) -> float:
    socket = f"olmo-tui-bench-{os.getpid()}-{run}"  # a fresh server each run
    tmux = ["tmux", "-L", socket]
    start = time.time()
    subprocess.run(tmux + ["-f", "/dev/null", "new-session", "-d", "-s", "bench", "-x", "80", "-y", "24",
                           f"cd {REPO} && PYTHONPATH={REPO} {sys.executable} -m olmo_tui"], check=True)
    try:
        while time.time() - start < 30:
            pane = subprocess.run(tmux + ["capture-pane", "-p", "-t", "bench"], capture_output=True, text=True).stdout
            if "layers x width" in pane:
                return time.time() - start
            time.sleep(0.01)
        raise RuntimeError("the browser did not show within 30 s")
    finally:
        subprocess.run(tmux + ["kill-server"], capture_output=True)


def figures(times) -> dict:
    return {"runs_s": [round(t, 3) for t in times], "best_s": round(min(times), 3),
            "median_s": round(statistics.median(times), 3)}


def main() -> int:
    global REPO
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--no-tmux", action="store_true")
    parser.add_argument("--limit", type=float, default=0.5, help="seconds; exit 1 when a best figure is over")
    parser.add_argument("--repo", type=Path, default=REPO, help="the checkout to measure (default: this one)")
    args = parser.parse_args()
    REPO = args.repo.resolve()
    dry, headless, minimal = [], [], []
    for _ in range(args.runs):  # interleaved, so all see the same machine load
        dry.append(dry_run_once())
        headless.append(headless_once())
        minimal.append(headless_once(MINIMAL))
    result = {
        "repo": str(REPO),
        "dry_run": figures(dry),
        "headless": figures([t for t, _, _ in headless]),
        # CPU time is what start-up costs on an idle machine; wall time also counts waiting
        # for a core when the machine is shared.
        "headless_cpu_median_s": round(statistics.median(c for _, _, c in headless), 3),
        "torch_imported": any(loaded for _, loaded, _ in headless),
        "minimal_textual_app": figures([t for t, _, _ in minimal]),
        "minimal_textual_app_cpu_median_s": round(statistics.median(c for _, _, c in minimal), 3),
        "load_average_1min": round(os.getloadavg()[0], 1),
    }
    first_screen = ("headless", result["headless"]["best_s"])
    if shutil.which("tmux") and not args.no_tmux:
        result["tmux_80x24"] = figures([tmux_once(run) for run in range(args.runs)])
        first_screen = ("tmux 80x24", result["tmux_80x24"]["best_s"])
    print(json.dumps(result))
    over = [f"{what} {best:.3f} s" for what, best in (("dry-run", result["dry_run"]["best_s"]),
                                                       (f"app first screen ({first_screen[0]})", first_screen[1]))
            if best > args.limit]
    if result["torch_imported"]:
        over.append("torch was imported at start-up")
    if over:
        print(f"START-UP TOO SLOW (best of {args.runs}, limit {args.limit} s, load average "
              f"{result['load_average_1min']}): " + "; ".join(over), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
