"""A real mixture run (the repo's docs vs the engine's Python sources, prepared here) in the
monitor, the compare view and `olmo-tui compare --json`: the mix of tokens per source and the
eval loss of each held-out source, as the engine wrote them to metrics.jsonl."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from cli_helpers import REPO, run_cli
from engine.data.prepare import main_prepare
from olmo_tui.app.app import OlmoTuiApp
from olmo_tui.app.screens.compare import ComparePlot, CompareScreen
from olmo_tui.core.runs.registry import Registry, RunRecord, new_run_id, runs_root
from pilot_helpers import monitor_extra, wait_for

TINY = ["--model.d_model=32", "--model.n_layers=1", "--model.n_heads=2", "--model.mlp_multiple_of=32",
        "--dataset.sequence_length=64", "--train_module.max_sequence_length=64",
        "--train_module.rank_microbatch_size=512", "--data_loader.global_batch_size=512",
        "--train_module.scheduler.warmup_steps=0", "--trainer.no_checkpoints", "--trainer.max_duration=4 steps",
        "--trainer.metrics_collect_interval=2", "--trainer.callbacks.lm_evaluator.eval_interval=2",
        "--trainer.callbacks.lm_evaluator.eval_batches=1"]


def _mixture_run(tmp_path: Path) -> RunRecord:
    """Train 4 steps with a real `olmo-train` into a run dir, then register it as finished."""
    docs, code = tmp_path / "docs.npy", tmp_path / "code.npy"
    assert main_prepare([str(REPO / "docs" / "*.md"), "-o", str(docs)]) == 0
    assert main_prepare([str(REPO / "engine" / "data" / "*.py"), "-o", str(code)]) == 0
    run_id = new_run_id("mix")
    run_dir = runs_root() / run_id
    out = run_cli("mix", "--preset", "tiny-cpu", "--run-dir", str(run_dir), *TINY, "--dataset.kind=numpy",
                  f"--dataset.sources.docs.paths={docs}", "--dataset.sources.docs.ratio=0.25",
                  f"--dataset.sources.code.paths={code}", "--dataset.sources.code.ratio=0.75",
                  module="engine", timeout=180)
    assert out.returncode == 0, out.stderr
    return Registry().add(RunRecord(id=run_id, name="mix", backend="local", run_dir=str(run_dir),
                                    status="succeeded", preset="tiny-cpu", created=time.time(), exit_code=0))


@pytest.mark.slow  # a real olmo-train run, then the app (~40 s on a busy 2-core machine)
async def test_mix_and_per_source_eval_in_monitor_compare_view_and_compare_json(isolated_xdg, tmp_path):
    run = _mixture_run(tmp_path)
    records = [json.loads(line) for line in Path(run.run_dir, "metrics.jsonl").read_text().splitlines()]
    last = records[-1]
    assert (last["data/docs/tokens"], last["data/code/tokens"]) == (512, 1536)  # 8 of 32 rows are docs

    out = run_cli("compare", run.id, "--json")
    assert out.returncode == 0, out.stderr
    final = json.loads(out.stdout)[0]["final"]
    for name in ("docs", "code"):
        assert final[f"eval/lm/{name}/loss"] == {"value": last[f"eval/lm/{name}/loss"], "step": 4}
    table = run_cli("compare", run.id).stdout.splitlines()
    header, values = table[0].split(), table[1].split()
    assert header[:11] == ["RUN", "STATUS", "STEP", "LOSS", "BEST", "LOSS", "EVAL", "LOSS", "EVAL", "LOSS", "CODE"]
    assert f"{last['eval/lm/code/loss']:.4g}" in values and f"{last['eval/lm/docs/loss']:.4g}" in values

    app = OlmoTuiApp()
    async with app.run_test(size=(150, 40)) as pilot:
        extra = await monitor_extra(pilot, run.id, 4)
        assert "mix docs 25.0% · code 75.0%" in extra
        assert (f"eval loss {last['eval/lm/loss']:.4f} (docs {last['eval/lm/docs/loss']:.4f} · "
                f"code {last['eval/lm/code/loss']:.4f})") in extra

        await app.push_screen(CompareScreen([Registry().get(run.id)]))
        await wait_for(pilot, lambda: isinstance(app.screen, CompareScreen) and app.screen.loaded)
        plot = app.screen.query_one("#plot-eval-loss", ComparePlot)
        assert app.screen.eval_metrics() == ["eval_loss", "eval/lm/code/loss", "eval/lm/docs/loss"]
        drawn = []
        for _ in range(3):  # e: code, docs, then overall again
            await pilot.press("e")
            drawn.append((plot.metric, plot.series[0][2]))
        evals = [r for r in records if "eval/lm/loss" in r]
        assert drawn == [("eval/lm/code/loss", [r["eval/lm/code/loss"] for r in evals]),
                         ("eval/lm/docs/loss", [r["eval/lm/docs/loss"] for r in evals]),
                         ("eval_loss", [r["eval/lm/loss"] for r in evals])]


async def test_the_editor_estimates_each_source_and_marks_one_too_small(isolated_xdg, tmp_path):
    """A user preset with a mixture, opened in the editor: the estimates list each source's tokens
    needed and epochs; raising docs' ratio past what it holds marks it, as the pre-flight would."""
    from engine.config.presets import user_dir
    from olmo_tui.app.screens.editor import EditorScreen
    from pilot_helpers import open_editor, type_into

    docs, code = tmp_path / "docs.npy", tmp_path / "code.npy"
    assert main_prepare([str(REPO / "docs" / "CONTRACTS.md"), "-o", str(docs)]) == 0  # ~10K tokens
    assert main_prepare([str(REPO / "engine" / "data" / "*.py"), "-o", str(code)]) == 0  # ~80K tokens
    user_dir().mkdir(parents=True, exist_ok=True)
    (user_dir() / "mix.toml").write_text(
        'extends = "tiny-cpu"\n[dataset]\nkind = "numpy"\n[trainer]\nmax_duration = "20 steps"\n'
        f'[dataset.sources.code]\npaths = ["{code}"]\nratio = 0.9\n'
        f'[dataset.sources.docs]\npaths = ["{docs}"]\nratio = 0.1\n')
    app = OlmoTuiApp()
    async with app.run_test(size=(160, 48)) as pilot:
        screen = await open_editor(pilot, "mix")
        assert isinstance(screen, EditorScreen)
        est = screen.last_estimates
        assert [(p.name, p.tokens_needed) for p in est.sources] == [("code", 36864), ("docs", 4096)]
        body = str(screen.query_one("#est-body").render())
        assert "sources (needs, epochs/max)" in body and f"docs       0.1    4.1K {est.sources[1].epochs:.2f}/1" in body
        assert all(p.problem() is None for p in est.sources)
        await type_into(pilot, screen, "dataset.sources",
                        f"{{code: {{paths: [{code}], ratio: 0.5}}, docs: {{paths: [{docs}], ratio: 0.5}}}}")
        await wait_for(pilot, lambda: screen.last_estimates.sources[1].ratio == 0.5)
        docs_plan = screen.last_estimates.sources[1]
        assert docs_plan.tokens_needed == 20480 and docs_plan.problem() is not None  # 20K of ~9.6K
