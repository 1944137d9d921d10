"""The examples/ extension project in CI: its ablation sweep (the ReLU^2 MLP against the
built-in gated MLP on tiny-cpu, shrunk further here) runs through the real `olmo-tui sweep`, and
`olmo-tui compare` shows both variants with the callback's metric."""

from __future__ import annotations

import json

import pytest

from cli_helpers import run_cli

TINY = ["--model.d_model=32", "--model.n_layers=1", "--model.n_heads=2", "--dataset.sequence_length=64",
        "--train_module.max_sequence_length=64", "--train_module.rank_microbatch_size=128",
        "--data_loader.global_batch_size=128", "--trainer.max_duration=4steps",
        "--trainer.metrics_collect_interval=2", "--trainer.callbacks.lm_evaluator.enabled=false",
        "--trainer.no_checkpoints", "--train_module.scheduler.warmup_steps=0",
        # the example's generator data source too
        "--dataset.kind=arithmetic", "--dataset.arithmetic.num_tokens=20000"]


def test_the_example_extension_dry_run_shows_its_fields():
    result = run_cli("--preset", "tiny-cpu", "--extensions=[examples/my_components]", "--model.mlp.kind=relu2",
                     "--dataset.kind=arithmetic", "--trainer.callbacks.weight_stats.every=5", "--dry-run")
    assert result.returncode == 0, result.stderr
    for text in ("[model.mlp.relu2]", "hidden_multiplier = 4.0", "[dataset.arithmetic]", "max_operand = 999",
                 "[trainer.callbacks.weight_stats]", "every = 5"):
        assert text in result.stdout


@pytest.mark.slow
def test_the_relu2_ablation_sweep_runs_and_compare_shows_both(isolated_xdg):
    sweep = run_cli("sweep", "examples/relu2_ablation.toml", *TINY, timeout=400)
    assert sweep.returncode == 0, sweep.stderr[-2000:]
    runs = json.loads(run_cli("runs", "--sweep", "relu2-ablation", "--json").stdout)
    assert [run["status"] for run in runs] == ["succeeded", "succeeded"], runs
    compare = run_cli("compare", *[run["id"] for run in runs], "--json")
    assert compare.returncode == 0, compare.stderr
    gated, relu2 = json.loads(compare.stdout)
    # The variant differs in the MLP only (its chosen section comes with its defaults).
    assert "--model.mlp.kind=relu2" in relu2["overrides_vs_baseline"]
    assert all(o.startswith("--model.mlp.") for o in relu2["overrides_vs_baseline"]), relu2
    assert gated["overrides_vs_baseline"] == []
    for row in (gated, relu2):
        assert row["final"]["step"] == 4 and row["final"]["weight_rms"]["value"] > 0
    assert gated["final"]["loss"]["value"] != relu2["final"]["loss"]["value"]
    table = run_cli("compare", *[run["id"] for run in runs])
    assert "WEIGHT_RMS" in table.stdout and "--model.mlp.kind=relu2" in table.stdout


def test_the_example_train_script_runs_shows_in_runs_and_records_its_metric(isolated_xdg, tmp_path):
    # A researcher's script, run from their own directory (not the repo's).
    import os
    import subprocess
    import sys

    from cli_helpers import REPO

    script = REPO / "examples" / "train.py"
    tiny = [o for o in TINY if not o.startswith(("--dataset.kind", "--dataset.arithmetic"))]
    done = subprocess.run([sys.executable, str(script), *tiny], cwd=tmp_path, capture_output=True, text=True,
                          timeout=300, env={**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-2000:]
    (run,) = json.loads(run_cli("runs", "--json").stdout)
    assert run["name"] == "my-script" and run["status"] == "succeeded", run
    compare = run_cli("compare", run["id"], "--json")
    (row,) = json.loads(compare.stdout)
    assert row["final"]["embedding_norm"]["step"] == 4 and row["final"]["embedding_norm"]["value"] > 0
