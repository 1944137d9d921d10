"""The stability monitor in real tiny runs: an injected loss spike (OLMO_TUI_TEST_LOSS_SPIKE)
becomes an alert record; `stop` ends the run with a checkpoint of the weights before the spike."""

from __future__ import annotations

import pytest

import tiny_run
from engine.train.callbacks.stability_monitor import TEST_SPIKE_ENV, injected_spike, loss_threshold


def test_threshold_and_hook_parsing():
    assert loss_threshold([4.0] * 10, 6.0) == pytest.approx(4.0 + 6 * 0.04)  # std floored at 1% of the mean
    assert loss_threshold([1.0, 3.0], 2.0) == pytest.approx(2.0 + 2 * 1.0)
    assert injected_spike("12") == (12, 10.0) and injected_spike("5:3") == (5, 3.0)
    assert injected_spike("") is None and injected_spike("x") is None


def _alerts(records):
    return [(r["step"], a) for r in records for a in r.get("alerts", [])]


def test_injected_spike_warns_once_and_training_goes_on(tmp_path, monkeypatch):
    monkeypatch.setenv(TEST_SPIKE_ENV, "12:10")
    cfg = tiny_run.small_config("--trainer.metrics_collect_interval=5", steps=14)
    assert tiny_run.run(cfg, tmp_path / "run") == 0
    records = tiny_run.metrics(tmp_path / "run")
    alerts = _alerts(records)
    assert [(step, a["kind"], a["action"]) for step, a in alerts] == [(12, "loss_spike", "warn")]
    by_step = {r["step"]: r for r in records}
    assert 12 in by_step  # logged at once, off the 5-step interval
    spike = alerts[0][1]
    assert by_step[12]["loss"] == pytest.approx(spike["value"]) and spike["value"] > spike["threshold"]
    assert by_step[14]["loss"] < spike["threshold"]  # healthy again: the spike never entered the window


def test_stop_policy_skips_the_update_and_leaves_a_checkpoint(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(TEST_SPIKE_ENV, "10")
    cfg = tiny_run.small_config("--trainer.no_checkpoints=false", "--trainer.callbacks.checkpointer.save_interval=100",
                                "--trainer.callbacks.checkpointer.ephemeral_save_interval=null",
                                "--trainer.callbacks.stability_monitor.on_loss_spike=stop", steps=20)
    run_dir = tmp_path / "run"
    assert tiny_run.run(cfg, run_dir) == 1
    records = tiny_run.metrics(run_dir)
    assert records[-1]["step"] == 10
    assert [(step, a["action"]) for step, a in _alerts(records)] == [(10, "stop")]
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == ["step10"]
    err = capsys.readouterr().err
    assert "error: stopped by the stability monitor: loss" in err and "at step 10" in err
