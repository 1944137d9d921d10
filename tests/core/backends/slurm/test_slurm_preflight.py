"""A SLURM launch runs the data pre-flight here when this machine sees the job's files (all
under launch.slurm.shared_paths): a typo in a data path is exit 2 before sbatch, not a failed
job after the queue. Node-local or ${VAR} paths are the nodes' to check."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from engine.config import resolve
from olmo_tui.core.backends.slurm.shared import files_seen_here as slurm_files_seen_here
from olmo_tui.core.launch.preflight import UserError, check_before_launch

REPO = Path(__file__).resolve().parents[4]


def slurm_cfg(shared: Path, *overrides: str):
    return resolve(preset="tiny-cpu", overrides=["--launch.backend=slurm", f"--launch.slurm.shared_paths=[{shared}]",
                                       "--dataset.kind=numpy", "--dataset.dtype=uint16", *overrides])


def test_files_under_shared_paths_are_checked_here_others_left_to_the_nodes(tmp_path):
    shared = tmp_path / "shared"
    (shared / "data").mkdir(parents=True)
    np.arange(5000, dtype=np.uint16).__mod__(250).tofile(shared / "data" / "train.npy")
    good = slurm_cfg(shared, f"--dataset.paths=[{shared}/data/train.npy]")
    assert slurm_files_seen_here(good)
    check_before_launch(good, shared / "runs" / "r1")  # passes: the file is there and fits

    typo = slurm_cfg(shared, f"--dataset.paths=[{shared}/data/trian.npy]")
    try:
        check_before_launch(typo, shared / "runs" / "r2")
    except UserError as exc:
        assert exc.field == "dataset.paths" and "trian.npy" in str(exc)
    else:
        raise AssertionError("a missing shared data file passed the SLURM pre-flight")

    # Not seen as the nodes see it: node-local scratch, or a ${VAR} the job's setup may set.
    for elsewhere in (f"--dataset.paths=[{tmp_path}/scratch/x.npy]", '--dataset.paths=["${NODE_SCRATCH}/x.npy"]'):
        cfg = slurm_cfg(shared, elsewhere)
        assert not slurm_files_seen_here(cfg)
        check_before_launch(cfg, shared / "runs" / "r3")  # left to the engine on the nodes


def test_headless_slurm_launch_with_a_missing_shared_file_is_one_line_exit_2(tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    env = {**os.environ, "OLMO_TUI_RUNS_DIR": str(shared / "runs"), "XDG_DATA_HOME": str(tmp_path / "xdg"),
           "XDG_STATE_HOME": str(tmp_path / "state")}
    out = subprocess.run([sys.executable, "-m", "olmo_tui", "--preset", "tiny-cpu", "--launch.backend=slurm",
                          f"--launch.slurm.shared_paths=[{shared}]", "--dataset.kind=numpy",
                          f"--dataset.paths=[{shared}/missing.npy]"],
                         capture_output=True, text=True, cwd=tmp_path, env=env, timeout=60)
    assert out.returncode == 2, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: dataset.paths:") and "missing.npy" in lines[0]
    assert not (shared / "runs").exists() or not any((shared / "runs").iterdir())
    runs = subprocess.run([sys.executable, "-m", "olmo_tui", "runs", "--json"], capture_output=True, text=True,
                          cwd=tmp_path, env=env, timeout=60)
    assert json.loads(runs.stdout) == []
