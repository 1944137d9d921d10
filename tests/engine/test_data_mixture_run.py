"""A mixture end to end on text prepared here with `olmo-train prepare` (the repo's docs vs its
Python sources): olmo-train refuses a source too small for its ratio before anything exists,
and a real run records tokens per source and the LM loss per held-out source."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.cli import main
from engine.data.prepare import main_prepare

from tiny_run import keys, metrics, run, small_config

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def prepared(tmp_path_factory) -> dict:
    """docs.npy: the repo's Markdown; code.npy: the engine's Python sources (byte tokenizer)."""
    out = tmp_path_factory.mktemp("prepared")
    assert main_prepare([str(REPO / "docs" / "*.md"), str(REPO / "README.md"), "-o", str(out / "docs.npy")]) == 0
    assert main_prepare([str(REPO / "engine" / "**" / "*.py"), "-o", str(out / "code.npy")]) == 0
    return {"docs": out / "docs.npy", "code": out / "code.npy"}


def _mixture(prepared, docs_ratio: float, docs_repetition: float = 1) -> list:
    return ["--dataset.kind=numpy", f"--dataset.sources.docs.paths={prepared['docs']}",
            f"--dataset.sources.docs.ratio={docs_ratio}",
            f"--dataset.sources.docs.max_repetition={docs_repetition}",
            f"--dataset.sources.code.paths={prepared['code']}", f"--dataset.sources.code.ratio={1 - docs_ratio}"]


def test_prepare_writes_a_manifest_the_glob_of_a_folder_skips(prepared):
    manifest = json.loads(Path(f"{prepared['docs']}.manifest.json").read_text())
    assert manifest["tokens"] * 2 == prepared["docs"].stat().st_size == manifest["bytes"]
    assert manifest["documents"] == len(list((REPO / "docs").glob("*.md"))) + 1
    from engine.data.token_source import expand_paths

    assert expand_paths([str(prepared["docs"].parent / "*")], "f") == [prepared["code"], prepared["docs"]]


def test_a_source_too_small_for_its_ratio_is_exit_2_before_anything_exists(prepared, tmp_path, capsys):
    docs_tokens = json.loads(Path(f"{prepared['docs']}.manifest.json").read_text())["tokens"]
    steps = 2 * docs_tokens // 2048 + 1  # docs at 0.5 needs about all of its tokens: more than it holds
    run_dir = tmp_path / "runs" / "mix"
    code = main(["mix", "--preset", "tiny-cpu", "--run-dir", str(run_dir), *_mixture(prepared, 0.5),
                 f"--trainer.max_duration={steps} steps"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert err[0].startswith("error: dataset.sources.docs: source 'docs' is too small for ratio 0.5: the run "
                             f"needs {steps * 1024:,} tokens of it")
    assert "max_repetition 1 = " in err[0]
    assert not (tmp_path / "runs").exists()
    # the same run at max_repetition 2 passes the pre-flight (--dry-run shows the plan)
    assert main(["mix", "--preset", "tiny-cpu", "--run-dir", str(run_dir), *_mixture(prepared, 0.5, 2),
                 f"--trainer.max_duration={steps} steps", "--dry-run"]) == 0
    narration = capsys.readouterr().err
    assert "# docs  ratio 0.5" in narration and "epochs (max 2)" in narration
    assert not (tmp_path / "runs").exists()


def test_a_mixture_run_records_tokens_and_held_out_loss_per_source(prepared, tmp_path):
    cfg = small_config(*_mixture(prepared, 0.25), "--data_loader.global_batch_size=512",
                       "--train_module.rank_microbatch_size=512", "--trainer.metrics_collect_interval=2",
                       "--trainer.callbacks.lm_evaluator.enabled=true",
                       "--trainer.callbacks.lm_evaluator.eval_interval=4",
                       "--trainer.callbacks.lm_evaluator.eval_batches=1", steps=4)
    assert run(cfg, tmp_path / "run") == 0
    records = metrics(tmp_path / "run")
    assert {"data/docs/tokens", "data/code/tokens", "eval/lm/docs/loss", "eval/lm/code/loss",
            "eval/lm/docs/ppl", "eval/lm/loss"} <= keys(records)
    last = records[-1]
    # 4 steps x 8 rows: docs 0.25 -> 8 rows, code 24 rows, of 64 tokens each (concatenated: no padding)
    assert (last["data/docs/tokens"], last["data/code/tokens"]) == (8 * 64, 24 * 64) and last["tokens"] == 2048
    assert last["eval/lm/docs/loss"] != last["eval/lm/code/loss"]
    assert min(last["eval/lm/docs/loss"], last["eval/lm/code/loss"]) <= last["eval/lm/loss"] \
        <= max(last["eval/lm/docs/loss"], last["eval/lm/code/loss"])



def test_a_mixture_run_resumed_at_a_checkpoint_trains_on_the_same_later_batches(prepared, tmp_path):
    """6 steps straight vs 3 steps, then the same command for 6: the resumed run draws the same
    batches (same losses step for step) and the same tokens per source."""
    def cfg(steps, hard_stop=None):
        extra = [f"--trainer.hard_stop={hard_stop} steps"] if hard_stop else []
        return small_config(*_mixture(prepared, 0.25), "--data_loader.global_batch_size=512",
                            "--train_module.rank_microbatch_size=512", "--trainer.metrics_collect_interval=1",
                            "--trainer.no_checkpoints=false", "--trainer.callbacks.checkpointer.save_interval=3",
                            "--trainer.callbacks.checkpointer.ephemeral_save_interval=null",
                            "--trainer.callbacks.checkpointer.save_async=false", *extra, steps=steps)

    assert run(cfg(6), tmp_path / "straight") == 0
    assert run(cfg(6, hard_stop=3), tmp_path / "resumed") == 0
    assert run(cfg(6), tmp_path / "resumed") == 0
    straight = {r["step"]: r for r in metrics(tmp_path / "straight")}
    resumed = {r["step"]: r for r in metrics(tmp_path / "resumed")}
    for step in (4, 5, 6):
        assert resumed[step]["loss"] == straight[step]["loss"]
        assert resumed[step]["data/docs/tokens"] == straight[step]["data/docs/tokens"]
    assert straight[6]["data/docs/tokens"] + straight[6]["data/code/tokens"] == 6 * 512
