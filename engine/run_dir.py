"""The run directory: the contract between the engine, the launchers and the app.

    <run dir>/
      config.toml       the resolved config the run trains (secrets never written)
      launch.json       how it was launched: backend, argv, non-secret env, git state, parent run
      stdout.log        the merged output (the engine's console lines, `[metrics] {json}` lines)
      metrics.jsonl     one JSON object per logged step
      engine_run.json   a run `olmo-train` started by itself (engine/run_marker.py)
      exit.json         the exit record, written last: exit code, start and end time, cancelled
      engine_exit.json  a launched run's rank 0's own exit record (the final state if the
                        launcher's wrapper, which writes exit.json, was killed)
      run.lock          held (flock) by every live process of the run (engine/run_lock.py)
      checkpoints/stepN the default save folder
      stalled.json      while the run is stalled (hang watch); stacks/rank<R>.txt its stack dumps
      extensions/       a copy of the config's extensions and manifest.json (their sha256s)

Writers and readers import these names and the two functions below; nobody spells a file
name or the metrics prefix by hand (docs/ARCHITECTURE.md). Torch-free, pydantic-free: the app,
the CLI and the launchers' node scripts read it too.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Dict, Optional

CONFIG_FILE = "config.toml"
LAUNCH_RECORD = "launch.json"
LOG_FILE = "stdout.log"
METRICS_FILE = "metrics.jsonl"
START_MARKER = "engine_run.json"
EXIT_RECORD = "exit.json"
ENGINE_EXIT_RECORD = "engine_exit.json"
RUN_LOCK = "run.lock"
CHECKPOINTS_DIR = "checkpoints"
EXTENSIONS_DIR = "extensions"  # engine/config/extensions/snapshot.py
# Hang detection (engine/train/callbacks/hang_watch.py): present while no step has finished for
# longer than the watch's bound (removed when steps resume); each rank's Python stacks, appended
# at each stall (faulthandler), in stacks/rank<R>.txt.
STALL_MARKER = "stalled.json"
# `olmo-tui` forgot this run (forget without deleting its files): never re-recorded from the dir.
FORGOTTEN_MARKER = "forgotten"
STACKS_DIR = "stacks"

# A metrics record inside a log stream: the prefix, then the record as compact JSON on one line.
# A Beaker job's log carries these, so a log alone feeds the same panels metrics.jsonl does.
METRICS_PREFIX = "[metrics] "


# The record keys docs/CONTRACTS.md defines (by name or by prefix). Any other number in a record
# is a custom metric, one a callback recorded (an extension's): the monitor and compare show it.
CONTRACT_KEYS = frozenset({"step", "time", "total_steps", "tokens", "loss", "lr", "grad_norm", "z_loss", "tps",
                           "tps_total", "mfu", "data_pct", "eta_s"})
CONTRACT_PREFIXES = ("eval/", "gpu/", "moe/", "data/", "sys/")

# A record's stability alerts (engine/train/callbacks/stability_monitor.py): a list of
# {"kind", "action", "value", "threshold", "message"}; the sweep worker sends each to the notify
# hook as an `alert` event, the monitor shows a banner.
ALERTS_KEY = "alerts"


def record_alerts(record: Dict[str, Any]) -> list:
    """The well-formed alerts of one metrics record (never raises on garbage)."""
    alerts = record.get(ALERTS_KEY)
    if not isinstance(alerts, list):
        return []
    return [a for a in alerts if isinstance(a, dict) and isinstance(a.get("kind"), str)]


def custom_metrics(records) -> list:
    """The custom metrics (numbers under a non-contract key) of some records, sorted."""
    names = {key for record in records for key, value in record.items()
             if isinstance(value, (int, float)) and not isinstance(value, bool)}
    return sorted(n for n in names if n not in CONTRACT_KEYS and not n.startswith(CONTRACT_PREFIXES))


def format_metrics_line(record: Dict[str, Any]) -> str:
    """The console line of one metrics record: `[metrics] {"step":1,...}`."""
    return METRICS_PREFIX + json.dumps(record, separators=(",", ":"))


def parse_metrics_line(line: str) -> Optional[Dict[str, Any]]:
    """The JSON object of a `[metrics] {...}` line (the prefix may follow a logger's timestamp
    or a rank tag), else None. Never raises on garbage."""
    at = line.find(METRICS_PREFIX)
    if at < 0:
        return None
    try:
        record = json.loads(line[at + len(METRICS_PREFIX):])
    except ValueError:
        return None
    return record if isinstance(record, dict) and "step" in record else None


def exit_record(exit_code: int, started: float, launcher_exit_code: Optional[int] = None,
                cancelled: bool = False) -> Dict[str, Any]:
    """exit.json's fields. `exit_code` is the job's (a failed rank's code where torchrun
    reports it), `launcher_exit_code` the launcher process's own."""
    return {"exit_code": exit_code, "launcher_exit_code": exit_code if launcher_exit_code is None else launcher_exit_code,
            "started": started, "ended": time.time(), "cancelled": cancelled}


def read_exit_record(run_dir: Path, name: str = EXIT_RECORD) -> Optional[Dict[str, Any]]:
    """exit.json (or `name`: ENGINE_EXIT_RECORD) if the run has ended (None while it runs, or
    if the file is torn)."""
    try:
        record = json.loads((Path(run_dir) / name).read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and "exit_code" in record else None
