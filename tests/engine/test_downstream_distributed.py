"""The downstream evaluator over two data-parallel ranks (FSDP, gloo on CPU, under torchrun):
the same accuracy as one process, with the ranks holding different numbers of questions (so
the rank with fewer must run padding batches, or FSDP's collectives would hang)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

import tiny_run

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# lr 1e-12: Adam moves no float32 weight, so both runs evaluate exactly the initial model and
# only the evaluator's sharding differs. 5 questions: rank 0 scores 3 (12 sequences, 2 batches
# of 8), rank 1 scores 2 (8 sequences, 1 batch + 1 padding batch).
EVAL = ["--trainer.callbacks.downstream_evaluator.enabled=true",
        "--trainer.callbacks.downstream_evaluator.eval_interval=1",
        "--trainer.callbacks.downstream_evaluator.max_instances=5",
        "--train_module.optim.lr=1e-12", "--trainer.metrics_collect_interval=1"]


@pytest.mark.slow
def test_two_ranks_agree_with_one(tmp_path):
    single = tmp_path / "single"
    assert tiny_run.run(tiny_run.small_config(*EVAL, steps=1), single) == 0
    expected = tiny_run.metrics(single)[0]

    double = tmp_path / "double"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           "-m", "engine", "double", "--preset", "tiny-cpu", "--run-dir", str(double), *tiny_run.SMALL,
           "--trainer.max_duration=1 steps", "--launch.nproc_per_node=2", "--train_module.dp_config.name=fsdp",
           "--train_module.rank_microbatch_size=64", *EVAL]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, env=env, timeout=240)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    got = tiny_run.metrics(double)[0]
    for key in ("eval/downstream/sample-mc/acc", "eval/downstream/sample-mc/acc_norm"):
        assert got[key] == expected[key], key
        assert (got[key] * 5).is_integer()
