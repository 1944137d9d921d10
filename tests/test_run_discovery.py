"""One runs root for both front doors: a run `olmo-train NAME` starts lands in <runs root>/NAME,
the same root as the app's runs, and shows in `olmo-tui runs` (olmo_tui/core/discovery.py reads
the engine's engine_run.json / exit.json, engine/run_marker.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from engine.cli import main as olmo_train
from engine.run_marker import START_MARKER, runs_root
from olmo_tui.core import registry as registry_module
from olmo_tui.core.discovery import discover_engine_runs
from olmo_tui.core.registry import Registry
from olmo_tui.core.run_manager import refresh_all

REPO = Path(__file__).resolve().parents[1]
TINY = ["--model.d_model=32", "--model.n_layers=1", "--model.n_heads=2", "--model.mlp_multiple_of=32",
        "--dataset.kind=synthetic", "--dataset.synthetic_tokens=65536", "--dataset.sequence_length=64",
        "--train_module.max_sequence_length=64", "--train_module.rank_microbatch_size=128",
        "--data_loader.global_batch_size=128", "--trainer.no_checkpoints",
        "--trainer.callbacks.lm_evaluator.enabled=false", "--trainer.max_duration=3 steps"]


def train_in_process(name: str) -> int:
    """olmo-train NAME ... in this process; the rank variables it sets are put back after."""
    saved = dict(os.environ)
    try:
        return olmo_train([name, "--preset", "tiny-cpu", *TINY])
    finally:
        os.environ.clear()
        os.environ.update(saved)


def runs_json() -> list:
    out = subprocess.run([sys.executable, "-m", "olmo_tui", "runs", "--json"], capture_output=True, text=True,
                         cwd=REPO, timeout=60, check=True)
    return json.loads(out.stdout)


def test_both_front_doors_share_one_runs_root():
    assert registry_module.runs_root() == runs_root()  # the registry's is the engine's


def test_an_olmo_train_run_shows_in_olmo_tui_runs():
    assert train_in_process("from-olmo-train") == 0
    run_dir = runs_root() / "from-olmo-train"  # the default run dir: no --run-dir given
    assert (run_dir / START_MARKER).is_file() and (run_dir / "metrics.jsonl").is_file()
    [listed] = runs_json()
    assert (listed["name"], listed["run_dir"], listed["status"], listed["exit_code"], listed["latest_step"]) == \
        ("from-olmo-train", str(run_dir), "succeeded", 0, 3)
    # The same NAME again (a rerun or resume) restarts that record instead of adding one.
    registry = Registry()
    first_start = registry.get(listed["id"]).started
    assert train_in_process("from-olmo-train") == 0
    [again] = refresh_all(registry)
    assert again.id == listed["id"] and again.status == "succeeded" and again.started > first_start


def test_a_vanished_olmo_train_run_is_lost_not_running(tmp_path):
    run_dir = runs_root() / "crashed"
    run_dir.mkdir(parents=True)
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    marker = {"run_name": "crashed", "pid": int(gone.stdout), "pid_start": 1, "host": os.uname().nodename,
              "started": 1.0, "argv": ["olmo-train", "crashed"]}
    (run_dir / START_MARKER).write_text(json.dumps(marker))
    (runs_root() / "not-a-run").mkdir()  # folders without the marker are not runs
    registry = Registry()
    assert [r.id for r in discover_engine_runs(registry)] == ["crashed"]
    [run] = refresh_all(registry)
    assert run.status == "lost"
    assert discover_engine_runs(registry) == []  # known now: not added twice
