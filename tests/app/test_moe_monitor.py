"""A real MoE run (tiny-moe, shrunk) in the run monitor: its router health (load-balancing and
z-loss, the worst block's imbalance and one load bar per MoE block) under the throughput panel,
from the moe/* keys the engine wrote to metrics.jsonl."""

from __future__ import annotations

import json
import time
from pathlib import Path

from cli_helpers import run_cli
from olmo_tui.app.app import OlmoTuiApp
from olmo_tui.core.formatting import router_health
from olmo_tui.core.runs.registry import Registry, RunRecord, new_run_id, runs_root
from pilot_helpers import monitor_extra

TINY = ["--model.d_model=32", "--model.n_layers=3", "--model.n_heads=2", "--model.mlp_hidden_size=32",
        "--model.moe.num_experts=4", "--model.moe.hidden_size=32", "--dataset.kind=synthetic",
        "--dataset.sequence_length=64", "--train_module.max_sequence_length=64",
        "--train_module.rank_microbatch_size=256", "--data_loader.global_batch_size=256",
        "--train_module.scheduler.warmup_steps=0", "--trainer.no_checkpoints", "--trainer.max_duration=2 steps",
        "--trainer.callbacks.lm_evaluator.enabled=false"]


async def test_monitor_shows_router_health_of_a_real_moe_run(isolated_xdg):
    run_id = new_run_id("moe")
    run_dir = runs_root() / run_id
    out = run_cli("moe", "--preset", "tiny-moe", "--run-dir", str(run_dir), *TINY, module="engine", timeout=180)
    assert out.returncode == 0, out.stderr
    run = Registry().add(RunRecord(id=run_id, name="moe", backend="local", run_dir=str(run_dir),
                                   status="succeeded", preset="tiny-moe", created=time.time(), exit_code=0))
    last = json.loads(Path(run_dir, "metrics.jsonl").read_text().splitlines()[-1])
    assert [len(last[f"moe/load/{i}"]) for i in range(3)] == [4, 4, 4]

    app = OlmoTuiApp()
    async with app.run_test(size=(120, 40)) as pilot:
        extra = await monitor_extra(pilot, run.id, 2)
        worst = max(range(3), key=lambda i: last[f"moe/imbalance/{i}"])
        assert f"router lb {last['moe/lb_loss']:.3f} · z {last['moe/z_loss']:.2f}" in extra
        assert f"worst {last[f'moe/imbalance/{worst}']:.2f} (block {worst})" in extra
        bars = extra.split("load/block ")[1].split()[0]
        assert len(bars) == 3 and extra.count("\n") <= 6  # one bar per block; fits the panel
    assert router_health({"loss": 1.0}) is None  # dense runs show nothing
