"""The downstream evaluator inside a real training run: eval/downstream/<task>/acc and acc_norm in
metrics.jsonl on the evaluation steps, and a bad task as a user error before training."""

from __future__ import annotations

import tiny_run

DOWNSTREAM = ["--trainer.callbacks.downstream_evaluator.enabled=true",
              "--trainer.callbacks.downstream_evaluator.eval_interval=2",
              "--trainer.callbacks.downstream_evaluator.max_instances=8",
              "--trainer.metrics_collect_interval=3"]


def test_metrics_appear_in_metrics_jsonl_on_eval_steps(tmp_path, capsys):
    run_dir = tmp_path / "run"
    assert tiny_run.run(tiny_run.small_config(*DOWNSTREAM, steps=4), run_dir) == 0
    records = {r["step"]: r for r in tiny_run.metrics(run_dir)}
    # Logged: every 3rd step, the last one, and each eval step (evals force a log line).
    assert sorted(records) == [2, 3, 4]
    for step in (2, 4):
        for key in ("acc", "acc_norm"):
            value = records[step][f"eval/downstream/sample-mc/{key}"]
            assert 0.0 <= value <= 1.0 and (value * 8).is_integer()  # a share of the 8 instances
    assert not [k for k in records[3] if k.startswith("eval/downstream/")]
    assert "downstream eval at step 2: sample-mc acc " in capsys.readouterr().out


def test_an_unknown_task_stops_before_training_and_leaves_nothing(tmp_path, capsys):
    run_dir = tmp_path / "run"
    cfg = tiny_run.small_config(*DOWNSTREAM, "--trainer.callbacks.downstream_evaluator.tasks=[nope]")
    assert tiny_run.run(cfg, run_dir) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        "error: trainer.callbacks.downstream_evaluator.tasks: unknown task 'nope'; built-in tasks: "
        "sample-mc; or give a path to a .jsonl file"]
    assert not run_dir.exists()
