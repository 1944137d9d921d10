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


def data_mix(record: dict) -> Optional[str]:
    """A mixture's share of the tokens so far, from a metrics record's data/<name>/tokens:
    'mix code 70.1% · docs 29.9%'; None for a run with one source."""
    tokens = {key[5:-7]: value for key, value in record.items()
              if key.startswith("data/") and key.endswith("/tokens") and isinstance(value, (int, float))}
    total = sum(tokens.values())
    if not total:
        return None
    return "mix " + " · ".join(f"{name} {100 * n / total:.1f}%" for name, n in tokens.items())


def eval_losses(record: dict) -> Optional[str]:
    """'eval loss 2.3100 (code 2.1000 · docs 2.9000)': overall, then each named held-out set."""
    overall = record.get("eval/lm/loss")
    if not isinstance(overall, (int, float)):
        return None
    named = [(key[8:-5], value) for key, value in record.items()
             if key.startswith("eval/lm/") and key.endswith("/loss") and key.count("/") == 3]
    detail = " (" + " · ".join(f"{name} {value:.4f}" for name, value in named) + ")" if named else ""
    return f"eval loss {overall:.4f}{detail}"


_LOAD_BARS = "▁▂▃▄▅▆▇█"


def router_health(record: dict) -> Optional[str]:
    """An MoE run's router health from a metrics record (docs/CONTRACTS.md, moe/*), two lines:
    'router lb 1.012 · z 1.93 · worst 1.84 (block 3)' and 'load/block ▁▂▁█' (one bar per MoE
    block: its busiest expert's load / the mean, ▁ = balanced, █ = 3x or more); None for a dense run."""
    imbalance = {int(key.rsplit("/", 1)[1]): value for key, value in record.items()
                 if key.startswith("moe/imbalance/") and isinstance(value, (int, float))}
    lb, z = record.get("moe/lb_loss"), record.get("moe/z_loss")
    if not imbalance and not isinstance(lb, (int, float)):
        return None
    parts = []
    if isinstance(lb, (int, float)):
        parts.append(f"router lb {lb:.3f}")
    if isinstance(z, (int, float)):
        parts.append(f"z {z:.2f}")
    if imbalance:
        worst = max(imbalance, key=imbalance.get)
        parts.append(f"worst {imbalance[worst]:.2f} (block {worst})")
    lines = [" · ".join(parts)]
    if imbalance:
        top = len(_LOAD_BARS) - 1
        bars = "".join(_LOAD_BARS[max(0, min(top, round((imbalance[i] - 1) / 2 * top)))] for i in sorted(imbalance))
        lines.append(f"load/block {bars}")
    return "\n".join(lines)


SPARK = "▁▂▃▄▅▆▇█"


def custom_metric_line(name: str, values, position: int, count: int) -> str:
    """The monitor's line for one custom metric (a callback's): its latest value, a sparkline of
    its last values, and which of the run's `count` custom metrics it is (`m` shows the next)."""
    recent = [float(v) for v in list(values)[-20:]]
    if not recent:
        return f"{name}  -"
    low, high = min(recent), max(recent)
    spark = "".join(SPARK[int((v - low) / (high - low) * (len(SPARK) - 1)) if high > low else 0] for v in recent)
    more = f"  (m: {position + 1}/{count})" if count > 1 else ""
    return f"{name}  {recent[-1]:.4g}  {spark}{more}"
