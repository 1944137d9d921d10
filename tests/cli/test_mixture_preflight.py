"""`olmo-tui` with a mixture: --dry-run narrates tokens and epochs per source; a source too small
for its ratio is one line with the numbers, exit 2, and no run record or run dir."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from cli_helpers import run_cli
from olmo_tui.core.runs.registry import Registry


def _mixture(tmp_path: Path, small_ratio: float) -> list:
    big, small = tmp_path / "big.npy", tmp_path / "small.npy"
    (np.arange(200_000) % 250).astype("uint16").tofile(big)
    (np.arange(20_000) % 250).astype("uint16").tofile(small)
    return ["--preset", "tiny-cpu", "--dataset.kind=numpy", f"--dataset.sources.big.paths={big}",
            f"--dataset.sources.big.ratio={1 - small_ratio}", f"--dataset.sources.small.paths={small}",
            f"--dataset.sources.small.ratio={small_ratio}", "--trainer.max_duration=100 steps"]


def test_dry_run_plan_and_a_too_small_source_refused_before_anything_exists(isolated_xdg, tmp_path):
    # 100 steps x 16 rows of 128: the small source (19,000 training tokens, 148 windows) at 0.05
    # gives 80 rows, at 0.2 it would need 320 rows = 40,960 tokens
    dry = run_cli(*_mixture(tmp_path, 0.05), "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "# small  ratio 0.05  needs        10,240 of 18,944 tokens: 0.54 epochs (max 1)" in dry.stderr
    out = run_cli(*_mixture(tmp_path, 0.2))
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == [
        "error: dataset.sources.small: source 'small' is too small for ratio 0.2: the run needs 40,960 tokens "
        "of it (2.16 epochs) but it holds 18,944 tokens x max_repetition 1 = 18,944; lower its ratio, raise "
        "its max_repetition, shorten the run or add data"]
    runs_dir = Path(os.environ["OLMO_TUI_RUNS_DIR"])
    assert not runs_dir.exists() or not any(runs_dir.iterdir())
    assert Registry().all() == []
