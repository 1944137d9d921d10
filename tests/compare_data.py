"""Finished runs written straight into the registry and run dirs (no training): a real resolved
config.toml per run and a deterministic metrics.jsonl, for the compare CLI and the app's compare
view (snapshots need the same numbers every time)."""

from __future__ import annotations

import json
import math
from typing import List, Sequence

from engine.config import resolve, to_toml
from olmo_tui.core.runs.registry import Registry, RunRecord, runs_root

STEPS = 40
# (run id, overrides, loss scale, throughput): one per run, always the same.
RUNS = [
    ("base-lr3e-3-20260101-000000-aaaa", [], 1.00, 1000.0),
    ("lr1e-3-20260101-000100-bbbb", ["--train_module.optim.lr=1e-3"], 1.08, 980.0),
    ("lr1e-3-seed1-20260101-000200-cccc", ["--train_module.optim.lr=1e-3", "--init_seed=1"], 1.05, 1040.0),
    ("d256-20260101-000300-dddd", ["--model.d_model=256"], 0.92, 620.0),
]


def metrics(scale: float, tps: float, steps: int = STEPS) -> List[dict]:
    out = []
    for step in range(1, steps + 1):
        record = {"step": step, "time": 1_767_225_600 + step, "total_steps": steps, "tokens": step * 2048,
                  "loss": scale * (2.0 + 4.0 * math.exp(-step / 10)) + 0.05 * math.sin(step), "lr": 3e-3,
                  "tps": tps + 20 * math.cos(step), "mfu": tps / 100}
        if step % 10 == 0:
            record["eval/lm/loss"] = scale * (2.1 + 4.0 * math.exp(-step / 10))
        out.append(record)
    return out


def seed_runs(count: int = len(RUNS), registry: Registry | None = None) -> List[RunRecord]:
    registry = registry or Registry()
    made = []
    for index, (run_id, overrides, scale, tps) in enumerate(RUNS[:count]):
        run_dir = runs_root() / run_id
        run_dir.mkdir(parents=True)
        cfg = resolve(preset="tiny-cpu", overrides=overrides)
        (run_dir / "config.toml").write_text(to_toml(cfg))
        records = metrics(scale, tps)
        (run_dir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
        (run_dir / "stdout.log").write_text("".join("[metrics] " + json.dumps(r) + "\n" for r in records))
        run = RunRecord(id=run_id, name=run_id.rsplit("-", 3)[0], backend="local", run_dir=str(run_dir),
                        status="succeeded", preset="tiny-cpu", created=1_767_225_600 + index * 60,
                        started=1_767_225_600 + index * 60, ended=1_767_225_700 + index * 60, exit_code=0,
                        latest_step=STEPS, total_steps=STEPS, summary={"loss": records[-1]["loss"], "tps": tps})
        made.append(registry.add(run))
    return made


def ids(runs: Sequence[RunRecord]) -> List[str]:
    return [run.id for run in runs]
