"""How numbers and durations read, in one place for the CLI and the app: counts (1.2K, 3.4B),
sizes (GiB), a progress ETA (1:02:03), an estimate (12 min, 1.5 h) and a run's age (3h)."""

from __future__ import annotations

from typing import Optional

GIB = 1024**3


def human_count(n: float) -> str:
    """1234 -> '1.2K', 1.5e9 -> '1.5B' (params, tokens, FLOPs)."""
    for unit, scale in (("T", 1e12), ("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.1f}{unit}"
    return f"{n:g}"


def gib(n: float) -> str:
    return f"{n / GIB:.1f} GiB"


def format_eta(seconds: Optional[float]) -> str:
    """A clock for a progress line: '4:05', '1:02:03'; unknown -> '--:--'."""
    if seconds is None or seconds < 0:
        return "--:--"
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}" if seconds >= 3600 else \
        f"{seconds // 60}:{seconds % 60:02d}"


def human_duration(seconds: float) -> str:
    """An estimate, rounded to what matters: '45 s', '12 min', '1.5 h', '4.0 days'."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    if seconds < 3 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def age(seconds: float) -> str:
    """How long ago, in the largest whole unit: '42s', '5m', '3h', '2d'."""
    seconds = max(0, int(seconds))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"
