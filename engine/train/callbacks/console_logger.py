"""One readable line per logged step, plus the machine-readable `[metrics] {json}` line.

    step 120/300 (40%) | loss 2.3412 | lr 2.10e-03 | 12,345 tok/s | MFU 41.2% | data 3% | ETA 1m05s

The `[metrics]` line carries the same record metrics.jsonl gets (docs/CONTRACTS.md), so a log
stream alone (a Beaker job's) feeds the app's throughput panel.
"""

from __future__ import annotations

import math
from typing import Any, Dict, Optional

from engine.config.trainer import ConsoleLoggerConfig
from engine.run_dir import format_metrics_line

from ..callback import Callback


def format_duration(seconds: Optional[float]) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "?"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def format_line(record: Dict[str, Any]) -> str:
    step, total = record["step"], record.get("total_steps")
    parts = [f"step {step}/{total} ({100 * step / total:.0f}%)" if total else f"step {step}"]
    parts.append(f"loss {record['loss']:.4f}" if record.get("loss") is not None else "loss ?")
    if record.get("lr") is not None:
        parts.append(f"lr {record['lr']:.2e}")
    if record.get("tps") is not None:
        parts.append(f"{record['tps']:,.0f} tok/s")
    if record.get("mfu") is not None:
        parts.append(f"MFU {record['mfu']:.1f}%")
    if record.get("data_pct") is not None:
        parts.append(f"data {record['data_pct']:.0f}%")
    if record.get("eval/lm/loss") is not None:
        parts.append(f"eval loss {record['eval/lm/loss']:.4f} (ppl {record['eval/lm/ppl']:.2f})")
    if "eta_s" in record:
        parts.append(f"ETA {format_duration(record['eta_s'])}")
    return " | ".join(parts)


class ConsoleLoggerCallback(Callback):
    name = "console_logger"
    priority = -20

    def __init__(self, config: ConsoleLoggerConfig):
        super().__init__()
        self.log_interval = config.log_interval

    def log_metrics(self, step: int, metrics: Dict[str, Any]) -> None:
        trainer = self.trainer
        if not trainer.is_rank0:
            return
        interval = self.log_interval or trainer.metrics_collect_interval
        last = step >= trainer.stop_step
        if step % interval == 0 or last or any(k.startswith("eval/") for k in metrics):
            print(format_line(metrics), flush=True)
        # Every record, whatever the readable interval: the log stream mirrors metrics.jsonl.
        print(format_metrics_line(metrics), flush=True)
