"""SIGUSR1 (SLURM's warning before a time limit) during the engine's start-up is not lost: the
Trainer stops after its first step with a final checkpoint and exit code 138 (128 + SIGUSR1)."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

from tiny_run import run, small_config

from engine import stop_request


def test_sigusr1_before_training_stops_after_the_first_step_with_a_checkpoint(tmp_path: Path):
    previous = signal.getsignal(signal.SIGUSR1)
    try:
        stop_request.install_early_handlers()
        os.kill(os.getpid(), signal.SIGUSR1)  # arrives while nothing is built yet
        cfg = small_config("--trainer.no_checkpoints=false", "--trainer.metrics_collect_interval=1", steps=50)
        assert run(cfg, tmp_path / "run") == 128 + signal.SIGUSR1
    finally:
        signal.signal(signal.SIGUSR1, previous)
    steps = [json.loads(line)["step"] for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1]
    assert [p.name for p in (tmp_path / "run" / "checkpoints").iterdir() if p.name.startswith("step")] == ["step1"]
    assert stop_request.take_pending() is None  # taken once
