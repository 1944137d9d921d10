"""The monitor's telemetry line: per GPU its utilisation (now, and a short history as a
sparkline), memory, power and temperature; on a CPU run the rank's CPU use and resident memory.
Fed by the sys/* keys of the metrics records (engine/train/callbacks/telemetry.py); hidden
until the first one arrives (a CPU run's: also below ROOMY_ROWS rows)."""

from __future__ import annotations

import re
from collections import deque
from typing import Any, Deque, Dict

from textual.widgets import Static

HISTORY = 16
# A CPU run's line (the rank's CPU and memory) shows only from this many rows up: at 80x24 the
# monitor keeps its 3-row header for the plots and the log. GPU lines always show.
ROOMY_ROWS = 30
BARS = "▁▂▃▄▅▆▇█"
GPU_KEY = re.compile(r"^sys/gpu(\d+)/(\w+)$")


def sparkline(values, top: float = 100.0) -> str:
    return "".join(BARS[min(len(BARS) - 1, max(0, int(v / top * (len(BARS) - 1) + 0.5)))] for v in values)


def telemetry_text(latest: Dict[str, Any], history: Dict[str, Deque[float]]) -> str:
    gpus: Dict[int, Dict[str, float]] = {}
    for key, value in latest.items():
        if (found := GPU_KEY.match(key)) and isinstance(value, (int, float)):
            gpus.setdefault(int(found.group(1)), {})[found.group(2)] = value
    parts = []
    for i in sorted(gpus):
        g = gpus[i]
        part = f"GPU{i} {g.get('util_pct', 0):3.0f}% {sparkline(history.get(f'gpu{i}', []))}"
        part += f" {g['mem_gib']:.1f}G" if "mem_gib" in g else ""
        part += f" {g['power_w']:.0f}W" if "power_w" in g else ""
        part += f" {g['temp_c']:.0f}°C" if "temp_c" in g else ""
        parts.append(part)
    if not gpus and isinstance(latest.get("sys/cpu_pct"), (int, float)):
        top = max([100.0, *history.get("cpu", [])])
        part = f"CPU {latest['sys/cpu_pct']:.0f}% {sparkline(history.get('cpu', []), top)}"
        if isinstance(latest.get("sys/rss_gib"), (int, float)):
            part += f"  RSS {latest['sys/rss_gib']:.2f} GiB"
        parts.append(part)
    return "  │  ".join(parts)


class TelemetryLine(Static):
    DEFAULT_CSS = """
    TelemetryLine { height: auto; padding: 0 1; display: none; }
    """

    def __init__(self, **kwargs) -> None:
        super().__init__("", **kwargs)
        self.latest: Dict[str, Any] = {}
        self.history: Dict[str, Deque[float]] = {}

    def add(self, record: Dict[str, Any]) -> None:
        sample = {k: v for k, v in record.items() if k.startswith("sys/")}
        if not sample:
            return
        self.latest = sample
        for key, value in sample.items():
            found = GPU_KEY.match(key)
            name = f"gpu{found.group(1)}" if found and found.group(2) == "util_pct" else (
                "cpu" if key == "sys/cpu_pct" else None)
            if name and isinstance(value, (int, float)):
                self.history.setdefault(name, deque(maxlen=HISTORY)).append(float(value))
        self.update(telemetry_text(self.latest, self.history))
        self.fit_display()

    def fit_display(self) -> None:
        """Shown once a sample came: a GPU's always, a CPU run's when the terminal has room."""
        gpu = any(GPU_KEY.match(key) for key in self.latest)
        self.display = bool(self.latest) and (gpu or self.app.size.height >= ROOMY_ROWS)
