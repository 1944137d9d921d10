"""metrics.jsonl in the run directory: one JSON object per logged step, flushed on every write.

On resume, records past the step the checkpoint was taken at (written before a crash, and about
to be trained again) are dropped first, so the file holds each step once and in order. The
rewrite goes through a temp file and a rename, so a reader tailing the file never sees half of it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, Optional, TextIO

from engine.atomic import write_atomic
from engine.config.trainer import MetricsWriterConfig
from engine.run_dir import METRICS_FILE

from ..callback import Callback



def truncate_after(path: Path, step: int) -> int:
    """Drop records with step > `step` (and any torn last line). Returns how many were dropped."""
    if not path.is_file():
        return 0
    kept, dropped = [], 0
    for line in path.read_text().splitlines():
        try:
            record = json.loads(line)
        except ValueError:  # a line cut off by a crash mid-write
            dropped += 1
            continue
        if isinstance(record, dict) and isinstance(record.get("step"), int) and record["step"] <= step:
            kept.append(line)
        else:
            dropped += 1
    if dropped:
        write_atomic(path, "".join(line + "\n" for line in kept), commit=True)
    return dropped


class MetricsWriterCallback(Callback):
    name = "metrics_writer"
    priority = -10

    def __init__(self, config: MetricsWriterConfig):
        super().__init__()
        self._file: Optional[TextIO] = None

    @property
    def path(self) -> Path:
        return self.trainer.run_dir / METRICS_FILE

    def pre_train(self) -> None:
        if not self.trainer.is_rank0:
            return
        truncate_after(self.path, self.trainer.global_step)
        self._file = open(self.path, "a", encoding="utf-8")

    def log_metrics(self, step: int, metrics: Dict[str, Any]) -> None:
        if self._file is None:
            return
        self._file.write(json.dumps(metrics, separators=(",", ":")) + "\n")
        self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
