"""A rank made to hang (OLMO_TUI_TEST_HANG sleeps in `_test_hang_sleep`) in a run launched by
olmo-tui: `stalled` in the runs table (CLI) and the monitor within the watch's bound, the rank's
stack file names the sleeping frame (the monitor's `k` shows it), and the run finishes normally
once the sleep ends (marker gone, status succeeded)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from cli_helpers import run_cli
from olmo_tui.app.app import OlmoTuiApp
from olmo_tui.app.screens.monitor import MonitorScreen
from olmo_tui.core.launch.run_manager import refresh_run
from olmo_tui.core.runs.registry import Registry
from olmo_tui.core.views.run_table import status_cell
from pilot_helpers import wait_for

SMALL = ["--model.d_model=32", "--model.n_layers=1", "--model.n_heads=2", "--model.mlp_multiple_of=32",
         "--dataset.kind=synthetic", "--dataset.synthetic_tokens=65536", "--dataset.sequence_length=64",
         "--train_module.max_sequence_length=64", "--train_module.rank_microbatch_size=128",
         "--data_loader.global_batch_size=128", "--trainer.no_evals", "--trainer.no_checkpoints",
         "--trainer.max_duration={value: 8, unit: steps}",
         "--trainer.callbacks.hang_watch.min_s=4", "--trainer.callbacks.hang_watch.multiple=5"]
HANG_S = 30


@pytest.mark.slow  # a real run that sleeps HANG_S seconds (little CPU)
async def test_a_hung_rank_is_stalled_with_its_stack_then_recovers(isolated_xdg):
    out = run_cli("--preset", "tiny-cpu", *SMALL, "--detach", env={"OLMO_TUI_TEST_HANG": f"0:6:{HANG_S}"})
    assert out.returncode == 0, out.stderr
    run_id = out.stdout.strip().splitlines()[-1]
    registry = Registry()
    run = registry.get(run_id)
    run_dir = Path(run.run_dir)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and status_cell(refresh_run(registry.get(run_id), registry)) != "stalled":
        time.sleep(0.2)
    noticed = time.time()
    marker = json.loads((run_dir / "stalled.json").read_text())
    assert marker["step"] == 5
    # Within the bound (max(min_s, multiple x median step)) plus the watch's 1 s look and ours.
    assert noticed - marker["since"] <= marker["bound_s"] + 3, marker
    assert "stalled" in run_cli("runs").stdout
    stacks = (run_dir / "stacks" / "rank0.txt").read_text()
    assert "stalled after step 5" in stacks and "_test_hang_sleep" in stacks and "hang_watch.py" in stacks

    app = OlmoTuiApp()
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        await app.push_screen(MonitorScreen(registry.get(run_id)))
        header = app.screen.query_one("#run-header")
        await wait_for(pilot, lambda: "stalled after step 5" in str(header.render()))
        await pilot.press("k")
        await wait_for(pilot, lambda: app.screen.id == "stack-dumps")
        assert "_test_hang_sleep" in str(app.screen.query_one(".dialog-text").render())

    deadline = time.monotonic() + HANG_S + 120
    while time.monotonic() < deadline and not refresh_run(registry.get(run_id), registry).terminal:
        time.sleep(0.5)
    run = registry.get(run_id)
    assert run.status == "succeeded", (run.status, run.message)
    assert not (run_dir / "stalled.json").exists()
    assert "steps resumed at step 6" in (run_dir / "stdout.log").read_text()
