"""`olmo-tui diff` on two real tiny-cpu runs (the headless launcher, a couple of steps each),
and `olmo-tui compare --json` on finished runs written into the registry."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time

from cli_helpers import REPO, run_cli
from compare_data import RUNS, STEPS, metrics, seed_runs

FAST = ["--data_loader.global_batch_size=256", "--train_module.rank_microbatch_size=256",
        "--trainer.metrics_collect_interval=1", "--dataset.kind=synthetic", "--trainer.no_checkpoints",
        "--trainer.no_evals", "--trainer.max_duration={value: 1, unit: steps}"]


def launch_detached(*overrides: str) -> str:
    out = run_cli("--preset", "tiny-cpu", *FAST, *overrides, "--detach")
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_diff_of_two_real_runs_prints_exactly_the_two_overrides():
    a = launch_detached()
    b = launch_detached("--train_module.optim.lr=1e-3", "--init_seed=7")
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        records = {r["id"]: r for r in json.loads(run_cli("runs", "--json").stdout)}
        if all(records[i]["status"] in ("succeeded", "failed") for i in (a, b)):
            break
        time.sleep(1)
    assert records[a]["status"] == records[b]["status"] == "succeeded", records

    out = run_cli("diff", a, b)
    assert out.returncode == 0, out.stderr
    assert sorted(out.stdout.splitlines()) == ["--init_seed=7", "--train_module.optim.lr=0.001"]
    as_json = json.loads(run_cli("diff", a, b, "--json").stdout)
    assert as_json["changes"] == {"init_seed": 7, "train_module.optim.lr": 0.001} and as_json["a"] == a
    back = run_cli("diff", b, a)  # the other way round: the values that undo it
    assert sorted(back.stdout.splitlines()) == ["--init_seed=0", "--train_module.optim.lr=0.003"]

    # The printed overrides are real: relaunching A with them gives B's config.
    from engine.config import resolve
    from olmo_tui.core.views.compare import config_diff

    a_dir, b_dir = records[a]["run_dir"], records[b]["run_dir"]
    rebuilt = resolve(config_file=f"{a_dir}/config.toml", overrides=out.stdout.split())
    assert config_diff(rebuilt, resolve(config_file=f"{b_dir}/config.toml")) == {}

    # compare on the real runs: final numbers are the last metrics record's.
    rows = json.loads(run_cli("compare", a, b, "--json").stdout)
    last_b = [json.loads(line) for line in open(f"{b_dir}/metrics.jsonl")][-1]
    assert rows[1]["final"]["loss"] == {"value": last_b["loss"], "step": 1}
    assert rows[1]["overrides_vs_baseline"] == as_json["overrides"]


def test_unknown_run_is_one_line_exit_2(isolated_xdg):
    seed_runs(1)
    for args in (["diff", RUNS[0][0], "no-such-run"], ["diff", "nope", RUNS[0][0]], ["compare", RUNS[0][0], "nope"]):
        out = run_cli(*args)
        assert out.returncode == 2, out
        assert out.stderr.strip().splitlines() == [f"error: no run {args[-1] if 'nope' != args[1] else 'nope'!r}; "
                                                   "see `olmo-tui runs` for ids"], out.stderr
        assert out.stdout == ""


def test_compare_json_final_and_best(isolated_xdg):
    runs = seed_runs(3)
    out = run_cli("compare", *[r.id for r in runs], "--json")
    assert out.returncode == 0, out.stderr
    rows = json.loads(out.stdout)
    assert [row["id"] for row in rows] == [r.id for r in runs]
    for row, (_, overrides, scale, tps) in zip(rows, RUNS[:len(runs)], strict=True):
        records = metrics(scale, tps)
        losses = [r["loss"] for r in records]
        assert row["final"]["loss"] == {"value": losses[-1], "step": STEPS}
        assert row["best"]["loss"] == {"value": min(losses), "step": losses.index(min(losses)) + 1}
        best_tps = max(r["tps"] for r in records)
        assert math.isclose(row["best"]["tps"]["value"], best_tps)
        assert row["final"]["eval_loss"]["step"] == STEPS  # eval every 10 steps: the last at 40
        assert sorted(row["overrides_vs_baseline"]) == sorted(o.replace("1e-3", "0.001") for o in overrides)
    table = run_cli("compare", *[r.id for r in runs])
    assert "(baseline)" in table.stdout and "--init_seed=1 --train_module.optim.lr=0.001" in table.stdout


def test_diff_of_a_failed_run(isolated_xdg):
    runs = seed_runs(2)
    from olmo_tui.core.runs.registry import Registry

    Registry().update(runs[1].id, status="failed", exit_code=1)
    out = subprocess.run([sys.executable, "-m", "olmo_tui", "diff", runs[0].id, runs[1].id], cwd=REPO,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.splitlines() == ["--train_module.optim.lr=0.001"], out
