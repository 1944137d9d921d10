"""An injected loss spike (OLMO_TUI_TEST_LOSS_SPIKE) in a run launched by olmo-tui with a notify
hook: the alert reaches metrics.jsonl, the hook (an `alert` event, from the sweep worker) and the
run monitor's banner (Pilot); the monitor's telemetry line shows the CPU run's CPU and memory."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pytest

from cli_helpers import run_cli
from olmo_tui.app.app import OlmoTuiApp
from olmo_tui.app.screens.monitor import MonitorScreen
from olmo_tui.app.widgets.alert_banner import AlertBanner
from olmo_tui.app.widgets.telemetry import TelemetryLine
from olmo_tui.core.launch.sweep_queue import get_sweep
from olmo_tui.core.runs.registry import Registry
from pilot_helpers import wait_for

SMALL = ["--model.d_model=32", "--model.n_layers=1", "--model.n_heads=2", "--model.mlp_multiple_of=32",
         "--dataset.kind=synthetic", "--dataset.synthetic_tokens=65536", "--dataset.sequence_length=64",
         "--train_module.max_sequence_length=64", "--train_module.rank_microbatch_size=128",
         "--data_loader.global_batch_size=128", "--train_module.scheduler.warmup_steps=0",
         "--trainer.no_evals", "--trainer.callbacks.checkpointer.save_interval=100",
         "--trainer.max_duration={value: 12, unit: steps}",
         "--trainer.callbacks.stability_monitor.on_loss_spike=stop"]


@pytest.mark.slow  # a real launch, its worker and a run: ~40 s on a loaded 2-core machine
async def test_spike_alert_reaches_metrics_hook_and_monitor(isolated_xdg, tmp_path):
    events = tmp_path / "events.jsonl"
    hook = f"{sys.executable} -c 'import sys; open(sys.argv[1], \"a\").write(sys.stdin.read() + chr(10))' {events}"
    out = run_cli("--preset", "tiny-cpu", *SMALL, "--notify-cmd", hook, env={"OLMO_TUI_TEST_LOSS_SPIKE": "10"})
    # A one-run sweep (the hook): the launcher follows it to the end and exits as the run did.
    assert out.returncode == 1 and "error: stopped by the stability monitor: loss" in out.stderr, out.stderr
    registry = Registry()
    [run] = registry.all()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not get_sweep(run.sweep, registry).ended:
        time.sleep(0.2)
    run = registry.get(run.id)
    assert run.status == "failed" and run.exit_code == 1, (run.status, run.message)
    records = [json.loads(line) for line in Path(run.run_dir, "metrics.jsonl").read_text().splitlines()]
    [alert] = [a for r in records for a in r.get("alerts", [])]
    assert (records[-1]["step"], alert["kind"], alert["action"]) == (10, "loss_spike", "stop")
    assert sorted(p.name for p in Path(run.run_dir, "checkpoints").iterdir()) == ["step10"]

    got = [json.loads(line) for line in events.read_text().splitlines()]
    assert [e["event"] for e in got] == ["alert", "failed", "sweep_done"]
    assert got[0]["run_id"] == run.id and got[0]["alert_step"] == 10 and got[0]["alert"] == alert

    app = OlmoTuiApp()
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        await app.push_screen(MonitorScreen(registry.get(run.id)))
        banner = app.screen.query_one(AlertBanner)
        await wait_for(pilot, lambda: banner.alerts)
        text = str(banner.render())
        assert banner.display and "1 stability alert" in text and "step 10 loss_spike (stop)" in text
        telemetry = app.screen.query_one(TelemetryLine)  # a CPU run: the rank's CPU and memory
        assert telemetry.display and str(telemetry.render()).startswith("CPU ") and " GiB" in str(telemetry.render())
