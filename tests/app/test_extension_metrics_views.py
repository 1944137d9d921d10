"""A custom metric an extension's callback records, in the app: the monitor shows it (one at a
time, `m` picks the next) and the compare view gives it a plot of its own. A real `olmo-train`
run with the extension written outside the repo (tests/extension_helpers.py)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from cli_helpers import run_cli
from extension_helpers import choose_all, write_extension
from olmo_tui.app.app import OlmoTuiApp
from olmo_tui.app.screens.compare import ComparePlot, CompareScreen
from olmo_tui.app.widgets.throughput import ThroughputPanel
from olmo_tui.core.runs.registry import Registry, RunRecord, new_run_id, runs_root
from pilot_helpers import monitor_extra, wait_for

TINY = ["--model.d_model=32", "--model.n_layers=1", "--model.n_heads=2", "--dataset.sequence_length=64",
        "--train_module.max_sequence_length=64", "--train_module.rank_microbatch_size=128",
        "--data_loader.global_batch_size=128", "--train_module.scheduler.warmup_steps=0", "--trainer.no_checkpoints",
        "--trainer.max_duration=4steps", "--trainer.metrics_collect_interval=2",
        "--trainer.callbacks.lm_evaluator.enabled=false"]


@pytest.mark.slow  # a real olmo-train run, then the app
async def test_custom_metrics_in_the_monitor_and_the_compare_view(isolated_xdg, tmp_path_factory):
    package = write_extension(tmp_path_factory.mktemp("outside_repo"), name="views_ext")
    run_id = new_run_id("ext")
    run_dir = runs_root() / run_id
    out = run_cli("ext", "--preset", "tiny-cpu", "--run-dir", str(run_dir), *choose_all(package), *TINY,
                  module="engine", timeout=180)
    assert out.returncode == 0, out.stderr
    run = Registry().add(RunRecord(id=run_id, name="ext", backend="local", run_dir=str(run_dir),
                                   status="succeeded", preset="tiny-cpu", created=time.time(), exit_code=0))
    records = [json.loads(line) for line in Path(run_dir, "metrics.jsonl").read_text().splitlines()]

    app = OlmoTuiApp()
    async with app.run_test(size=(150, 40)) as pilot:
        extra = await monitor_extra(pilot, run.id, 4)
        throughput = app.screen.query_one(ThroughputPanel)
        assert "ext_version  1  ▁▁  (m: 1/2)" in extra, extra  # sorted: ext_version, then param_rms
        await pilot.press("m")
        throughput.redraw()
        extra = str(app.screen.query_one("#tp-extra").render())
        assert f"param_rms  {records[-1]['param_rms']:.4g}" in extra and "(m: 2/2)" in extra, extra

        await app.push_screen(CompareScreen([Registry().get(run.id)]))
        await wait_for(pilot, lambda: isinstance(app.screen, CompareScreen) and app.screen.loaded)
        await wait_for(pilot, lambda: bool(app.screen.query("#plot-param-rms")))
        plot = app.screen.query_one("#plot-param-rms", ComparePlot)
        await wait_for(pilot, lambda: bool(plot.series))
        assert plot.series[0][2] == [r["param_rms"] for r in records]
