"""A few steps of a very small model in this process, for the callback tests (seconds, not minutes)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import List, Sequence

from engine.config import ExperimentConfig, resolve

# tiny-cpu shrunk further: one 32-wide block, 2 x 64-token sequences per step, random tokens.
SMALL = [
    "--model.d_model=32", "--model.n_layers=1", "--model.n_heads=2", "--model.mlp_multiple_of=32",
    "--dataset.kind=synthetic", "--dataset.synthetic_tokens=65536", "--dataset.sequence_length=64",
    "--train_module.max_sequence_length=64", "--train_module.rank_microbatch_size=128",
    "--data_loader.global_batch_size=128", "--train_module.scheduler.warmup_steps=0",
    "--trainer.no_checkpoints", "--trainer.callbacks.lm_evaluator.enabled=false",
]


def small_config(*overrides: str, steps: int = 4) -> ExperimentConfig:
    return resolve(preset="tiny-cpu", overrides=[*SMALL, f"--trainer.max_duration={steps} steps", *overrides])


def run(cfg: ExperimentConfig, run_dir: Path) -> int:
    """olmo-train's training path (pre-flight, build, fit, exit code) in this process.

    A plain process joins a 1-rank group (engine.distributed.init). os.environ is put back
    afterwards, so nothing the run set there reaches later subprocess tests."""
    from engine.run import main_training

    saved = dict(os.environ)
    try:
        return main_training(cfg, run_dir)
    finally:
        os.environ.clear()
        os.environ.update(saved)


def metrics(run_dir: Path) -> List[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def keys(records: Sequence[dict]) -> set:
    return {k for record in records for k in record}
