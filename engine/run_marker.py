"""Where runs go by default, and how a run started by `olmo-train` shows in `olmo-tui runs`.

One runs root for both front doors: `$OLMO_TUI_RUNS_DIR`, else `$XDG_DATA_HOME/olmo-tui/runs`
(`~/.local/share/olmo-tui/runs`). `olmo-train NAME` trains in `<runs root>/NAME`; the app's
launcher makes `<runs root>/<run id>` (docs/CONTRACTS.md).

A run the app launched is in its registry already. A run started by `olmo-train` itself (no
OLMO_TUI_RUN_ID in its environment) leaves two small files in its run dir, which the
registry reads when it next looks at the runs root (olmo_tui/core/runs/discovery.py):

- `engine_run.json` at start: run name, pid, the pid's start time in clock ticks (so a
  recycled pid is not taken for the run), host, start time, argv;
- `exit.json` at the end, in the launcher wrapper's format: exit code, start and end time.

The engine never imports olmo_tui; the files are the contract. Torch-free.
"""

from __future__ import annotations

import os
import re
import socket
import sys
import time
from pathlib import Path
from typing import Optional

from engine.atomic import write_json_atomic
from engine.run_dir import EXIT_RECORD, START_MARKER, exit_record

MANAGED_ENV = "OLMO_TUI_RUN_ID"  # set by olmo-tui's launcher: it records the run itself


def runs_root() -> Path:
    """$OLMO_TUI_RUNS_DIR, else $XDG_DATA_HOME/olmo-tui/runs (~/.local/share/olmo-tui/runs)."""
    if os.environ.get("OLMO_TUI_RUNS_DIR"):
        return Path(os.environ["OLMO_TUI_RUNS_DIR"]).expanduser()
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(base) / "olmo-tui" / "runs"


# The tail the app's launcher gives a run id: '<name>-YYYYmmdd-HHMMSS-<4 hex>' (they sort by time).
RUN_ID_TAIL = re.compile(r"-\d{8}-\d{6}-[0-9a-f]{4}$")


def find_run_dir(ref: str) -> Optional[Path]:
    """The run dir a command line means by `ref` when it is not a path: a run id or an
    `olmo-train NAME` folder under the runs root, else a run name (its newest run there).
    None when nothing matches. Torch-free, registry-free: the folder names are the contract."""
    if not ref or os.sep in ref or ref in (".", ".."):
        return None
    root = runs_root()
    if (root / ref).is_dir():
        return root / ref
    try:
        named = [p for p in root.iterdir()
                 if p.is_dir() and RUN_ID_TAIL.search(p.name) and RUN_ID_TAIL.sub("", p.name) == ref]
    except OSError:  # no runs root yet
        return None
    return max(named, key=lambda p: p.name[-20:]) if named else None


def process_start_ticks(pid: int) -> Optional[int]:
    """Field 22 of /proc/<pid>/stat (start time in clock ticks): tells a live run from an
    unrelated process that got the same pid later. None if no such process (or a zombie)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None
    fields = stat[stat.rfind(b")") + 2:].split()
    if fields[0] == b"Z":
        return None
    return int(fields[19])


def unmanaged_rank0() -> bool:
    """True in rank 0 of a run nobody else records (not launched by olmo-tui)."""
    return os.environ.get(MANAGED_ENV) is None and os.environ.get("RANK", "0") == "0"


def write_start_marker(run_dir: Path, run_name: str) -> float:
    """Write engine_run.json (dropping a previous attempt's exit.json); returns the start time."""
    started = time.time()
    (run_dir / EXIT_RECORD).unlink(missing_ok=True)
    write_json_atomic(run_dir / START_MARKER, {
        "run_name": run_name, "pid": os.getpid(), "pid_start": process_start_ticks(os.getpid()),
        "host": socket.gethostname(), "started": started, "argv": [sys.executable, *sys.argv],
    }, commit=True)
    return started


def write_exit_record(run_dir: Path, exit_code: int, started: float, name: str = EXIT_RECORD) -> None:
    write_json_atomic(run_dir / name, exit_record(exit_code, started, cancelled=exit_code in (130, 143)),
                      commit=True)
