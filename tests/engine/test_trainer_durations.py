"""Durations and reruns, in this process with a very small model (seconds)."""

from __future__ import annotations

import pytest

from engine.config import Duration, resolve
from engine.errors import UserError
from engine.train.build import steps_for

from tiny_run import SMALL, metrics, run


def _cfg(*overrides):
    return resolve(preset="tiny-cpu", overrides=[*SMALL, "--dataset.synthetic_tokens=4096", *overrides])


def test_steps_for_each_unit():
    cfg = _cfg()  # 128 tokens per step
    assert steps_for(cfg, Duration.steps(7), None, "f") == 7
    assert steps_for(cfg, Duration.tokens(1000), None, "f") == 8  # rounded up to whole steps
    assert steps_for(cfg, Duration.epochs(3), 32, "f") == 96
    with pytest.raises(UserError, match="trainer.max_duration"):
        steps_for(cfg, Duration.epochs(1), None, "trainer.max_duration")


def test_one_epoch_then_a_rerun_has_nothing_to_do(tmp_path, capsys):
    # 4096 synthetic tokens = 64 sequences of 64 minus the held-out slice; 2 per step.
    cfg = _cfg("--trainer.max_duration=1 epoch", "--trainer.no_checkpoints=false",
               "--trainer.metrics_collect_interval=1")
    assert run(cfg, tmp_path / "run") == 0
    out = capsys.readouterr().out
    records = metrics(tmp_path / "run")
    steps = records[-1]["total_steps"]
    assert [r["step"] for r in records] == list(range(1, steps + 1)) and 16 <= steps <= 32
    assert f"finished at step {steps}" in out

    assert run(cfg, tmp_path / "run") == 0  # same command again: resumes at the end
    out = capsys.readouterr().out
    assert f"nothing to do: already at step {steps} of {steps}" in out
    assert len(metrics(tmp_path / "run")) == steps


def test_reusing_a_run_dir_with_another_model_is_a_user_error(tmp_path, capsys):
    run_dir = tmp_path / "run"
    assert run(_cfg("--trainer.max_duration=2 steps", "--trainer.no_checkpoints=false"), run_dir) == 0
    capsys.readouterr()
    saved_config = (run_dir / "config.toml").read_text()
    code = run(_cfg("--trainer.max_duration=4 steps", "--trainer.no_checkpoints=false", "--model.d_model=64"),
               run_dir)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert err[0].startswith("error: model: ") and "model.d_model 32 -> 64" in err[0]
    assert (run_dir / "checkpoints" / "step2").is_dir()  # the existing run is untouched
    assert (run_dir / "config.toml").read_text() == saved_config
