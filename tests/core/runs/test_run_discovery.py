"""One runs root for both front doors: a run `olmo-train NAME` starts lands in <runs root>/NAME,
the same root as the app's runs, and shows in `olmo-tui runs` (olmo_tui/core/runs/discovery.py reads
the engine's engine_run.json / exit.json, engine/run_marker.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import numpy as np

from engine.cli import main as olmo_train
from engine.run_marker import START_MARKER, runs_root
from olmo_tui.core.runs import registry as registry_module
from olmo_tui.core.runs.discovery import discover_engine_runs
from olmo_tui.core.runs.registry import Registry
from olmo_tui.core.launch.run_manager import refresh_all

REPO = Path(__file__).resolve().parents[3]
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


async def test_an_olmo_train_run_keeps_its_output_for_olmo_tui_logs_and_the_monitor(tmp_path):
    """Rank 0 of a run olmo-tui did not launch tees its output into stdout.log (engine/output_tee.py):
    the terminal keeps every line, `olmo-tui logs NAME` and the app's monitor show the same, and a
    rerun of the NAME appends to what an earlier attempt left. Started from another directory with a
    relative data path, which its config.toml records absolute."""
    tokens = tmp_path / "data" / "train.npy"
    tokens.parent.mkdir()
    np.random.default_rng(0).integers(0, 256, 8192, dtype=np.uint16).tofile(tokens)
    numpy_data = [arg for arg in TINY if not arg.startswith("--dataset.synthetic_tokens")]
    numpy_data = [*(a.replace("=synthetic", "=numpy") for a in numpy_data),
                  "--dataset.paths=[data/train.npy]", "--dataset.dtype=uint16", "--trainer.metrics_collect_interval=1"]
    run_dir = runs_root() / "logged"
    run_dir.mkdir(parents=True)
    earlier = "an earlier attempt's last line\n"
    (run_dir / "stdout.log").write_text(earlier)
    # A real process: the tee sits under file descriptors 1 and 2, which pytest's capture of an
    # in-process run goes around.
    terminal = subprocess.run([sys.executable, "-m", "engine", "logged", "--preset", "tiny-cpu", *numpy_data],
                              capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert terminal.returncode == 0, terminal.stderr[-2000:]
    log = (run_dir / "stdout.log").read_text()
    assert log.startswith(earlier)  # appended, not replaced
    log = log[len(earlier):]
    assert "finished at step 3" in terminal.stdout and terminal.stdout.count("[metrics] ") == 3
    # Every line the terminal got (stdout and stderr, each still on its own stream) is in the log.
    assert sorted(log.splitlines()) == sorted((terminal.stdout + terminal.stderr).splitlines())
    assert tomllib.loads((run_dir / "config.toml").read_text())["dataset"]["paths"] == [str(tokens)]

    logs = subprocess.run([sys.executable, "-m", "olmo_tui", "logs", "logged"], capture_output=True,
                          text=True, cwd=REPO, timeout=60)
    assert logs.returncode == 0, logs.stderr
    assert logs.stdout.splitlines() == (earlier + log).splitlines()

    # The app: the runs screen lists it, enter opens its monitor, whose log panel holds the log.
    from olmo_tui.app.app import OlmoTuiApp
    from olmo_tui.app.screens.monitor import MonitorScreen
    from olmo_tui.app.screens.runs import RunsScreen
    from olmo_tui.app.widgets.log_panel import LogPanel

    async def wait_for(predicate, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            assert time.monotonic() < deadline, "condition not reached"
            await pilot.pause(0.05)

    app = OlmoTuiApp()
    async with app.run_test(size=(120, 30)) as pilot:
        app.action_show_runs()
        await wait_for(lambda: isinstance(app.screen, RunsScreen)
                       and [r.name for r in app.screen.visible_runs()] == ["logged"])
        app.screen.select(app.screen.visible_runs()[0].id)
        await pilot.press("enter")
        await wait_for(lambda: isinstance(app.screen, MonitorScreen))
        panel = app.screen.query_one(LogPanel)
        await wait_for(lambda: len(panel.lines) >= len((earlier + log).splitlines()))
        assert list(panel.lines) == (earlier + log).splitlines()


def test_the_output_tee_keeps_each_stream_and_logs_every_level(tmp_path):
    """print, a C-level write to the descriptor and a logging handler made before the tee all reach
    both the terminal (stdout still stdout, stderr still stderr) and the log; after close, neither."""
    script = (
        "import logging, os, sys\n"
        "from pathlib import Path\n"
        "from engine.output_tee import OutputTee\n"
        "logging.basicConfig(stream=sys.stderr, format='%(message)s')\n"  # bound to the original stream
        "tee = OutputTee(Path(sys.argv[1]))\n"
        "print('out: print', flush=True); print('err: print', file=sys.stderr, flush=True)\n"
        "os.write(1, b'out: fd\\n'); os.write(2, b'err: fd\\n')\n"
        "logging.warning('err: logging')\n"
        "tee.close(log_only='log only\\n')\n"
        "print('out: after close')\n"
    )
    log = tmp_path / "stdout.log"
    done = subprocess.run([sys.executable, "-c", script, str(log)], capture_output=True, text=True, cwd=REPO,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["out: print", "out: fd", "out: after close"]
    assert done.stderr.splitlines() == ["err: print", "err: fd", "err: logging"]
    logged = log.read_text().splitlines()
    assert sorted(logged[:-1]) == sorted(["out: print", "out: fd", "err: print", "err: fd", "err: logging"])
    assert logged[-1] == "log only"
