"""Extensions: a researcher's package outside the repo registers a callback, an MLP and a data
source (tests/extension_helpers.py); the real CLIs see their fields, report mistakes in one line
(exit 2, nothing created), train with them on 2 CPU ranks, and a resume runs the run's snapshot
of the code even after the source was edited."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cli_helpers import REPO, run_cli
from extension_helpers import choose_all, write_extension

# tiny-cpu shrunk: one 32-wide block, 2 x 64-token sequences per step.
SMALL = ["--model.d_model=32", "--model.n_layers=1", "--model.n_heads=2", "--dataset.sequence_length=64",
         "--train_module.max_sequence_length=64", "--train_module.rank_microbatch_size=64",
         "--data_loader.global_batch_size=128", "--trainer.metrics_collect_interval=2",
         "--trainer.callbacks.lm_evaluator.enabled=false", "--trainer.callbacks.checkpointer.save_interval=2",
         "--trainer.callbacks.checkpointer.ephemeral_save_interval=1"]


@pytest.fixture
def package(tmp_path_factory) -> Path:
    return write_extension(tmp_path_factory.mktemp("outside_repo"))


def test_dry_run_shows_the_extension_fields(package):
    result = run_cli("--preset", "tiny-cpu", *choose_all(package), "--model.mlp.relu2.hidden_multiplier=3",
                     "--dry-run")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert f'extensions = ["{package}"]' in out
    assert "[model.mlp.relu2]\nhidden_multiplier = 3.0" in out
    assert '[dataset.counting]' in out and "modulus = 200" in out
    assert "[trainer.callbacks.param_stats]" in out and "every = 1" in out


def test_a_typo_in_an_extension_field_is_one_line_with_a_suggestion(package):
    result = run_cli("--preset", "tiny-cpu", *choose_all(package), "--model.mlp.relu2.hiden_multiplier=3")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "did you mean 'hidden_multiplier'" in lines[0], result.stderr
    wrong = run_cli("--preset", "tiny-cpu", f"--extensions=[{package}]", "--model.mlp.kind=relu3", "--dry-run")
    assert wrong.returncode == 2 and "'relu2'" in wrong.stderr and "'gated'" in wrong.stderr


def _no_run_created(isolated_xdg) -> None:
    runs = run_cli("runs", "--json")
    assert runs.returncode == 0 and json.loads(runs.stdout) == [], runs.stdout
    runs_dir = Path(os.environ["OLMO_TUI_RUNS_DIR"])
    assert not runs_dir.exists() or not any(runs_dir.iterdir())


def test_an_extension_with_a_syntax_error_is_one_line_exit_2_and_no_record(tmp_path_factory, isolated_xdg):
    folder = tmp_path_factory.mktemp("outside_repo")
    broken = folder / "broken_ext.py"
    broken.write_text("from engine.extend import register_mlp\n\ndef oops(:\n    pass\n")
    result = run_cli("--preset", "tiny-cpu", f"--extensions={broken}", "--model.mlp.kind=relu2", "--no-follow")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and str(broken) in lines[0] and "line 3" in lines[0], result.stderr
    _no_run_created(isolated_xdg)


def test_an_extension_that_imports_torch_at_import_is_refused(tmp_path_factory, isolated_xdg):
    heavy = tmp_path_factory.mktemp("outside_repo") / "heavy_ext.py"
    heavy.write_text("import torch\n")
    result = run_cli("--preset", "tiny-cpu", f"--extensions={heavy}", "--dry-run")
    assert result.returncode == 2 and "imports torch" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def _torchrun(run_dir: Path, *args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    """olmo-train under torchrun, 2 CPU ranks (gloo), in a directory outside the repo."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--standalone",
           "-m", "engine", "--run-dir", str(run_dir), *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=run_dir.parent, env=env)


def _records(run_dir: Path) -> list:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_two_ranks_train_with_the_extension_and_a_resume_runs_the_snapshot(package, isolated_xdg):
    run_dir = Path(os.environ["OLMO_TUI_RUNS_DIR"]) / "ext-run"  # where `olmo-tui runs` finds it
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    args = ["--preset", "tiny-cpu", *choose_all(package), *SMALL]
    first = _torchrun(run_dir, *args, "--trainer.max_duration=4steps")
    assert first.returncode == 0, first.stderr[:3000]
    records = _records(run_dir)
    assert [r["step"] for r in records] == [2, 4]
    assert all(r["param_rms"] > 0 and r["ext_version"] == 1.0 for r in records)
    manifest = json.loads((run_dir / "extensions" / "manifest.json").read_text())
    assert [item["key"] for item in manifest] == [str(package)]
    assert (run_dir / "extensions" / "my_ext" / "modules.py").is_file()
    # The relu2 MLP really ran: the checkpoint holds its two projections, not the gated three.
    metadata = (run_dir / "checkpoints" / "step4" / "model_and_optim" / ".metadata").read_bytes()
    assert b"blocks.0.mlp.w1.weight" in metadata and b"mlp.w3" not in metadata

    write_extension(package.parent, version=2)  # the researcher edits the extension
    resumed = _torchrun(run_dir, *args, "--trainer.max_duration=6steps")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    records = _records(run_dir)
    assert [r["step"] for r in records][-1] == 6
    assert all(r["ext_version"] == 1.0 for r in records), "the resume ran the edited source, not the snapshot"
    log = (run_dir / "stdout.log").read_text()
    assert "changed since this run's snapshot" in log

    compare = run_cli("compare", "ext-run", "--json")
    assert compare.returncode == 0, compare.stderr
    (row,) = json.loads(compare.stdout)
    assert row["final"]["param_rms"]["step"] == 6 and row["final"]["ext_version"]["value"] == 1.0


def test_an_extension_model_part_has_no_hf_export(package):
    # In a subprocess: the registries are per process, and this test's extension must not leak.
    code = (f"from engine.config import resolve\nfrom engine.hf.config_map import hf_config_from_model\n"
            f"from engine.errors import UserError\n"
            f"cfg = resolve(preset='tiny-cpu', overrides=['--extensions={package}', '--model.mlp.kind=relu2'])\n"
            "try:\n    hf_config_from_model(cfg.model)\nexcept UserError as exc:\n    print(exc)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("model.mlp.kind: mlp 'relu2' comes from extension") and "HuggingFace" in out.stdout


def test_diff_says_when_two_runs_extension_code_differs(package, isolated_xdg):
    import time

    from engine.config.extensions.loader import Extension
    from engine.config.extensions.snapshot import write_snapshot
    from olmo_tui.core.runs.registry import Registry, RunRecord, new_run_id, runs_root

    config = f'extensions = ["{package}"]\nrun_name = "ext"\n\n[model.mlp]\nkind = "relu2"\n'
    ids = []
    for version in (1, 2):  # the researcher edits the extension between the two runs
        write_extension(package.parent, version=version)
        run_id = new_run_id("ext")
        run_dir = runs_root() / run_id
        run_dir.mkdir(parents=True)
        (run_dir / "config.toml").write_text(config)
        write_snapshot([Extension(str(package), package.name, package, str(package.parent))], run_dir)
        Registry().add(RunRecord(id=run_id, name="ext", backend="local", run_dir=str(run_dir), status="succeeded",
                                 created=time.time(), exit_code=0))
        ids.append(run_id)
    out = run_cli("diff", *ids)
    assert out.returncode == 0, out.stderr
    assert f"extension {package}: code differs" in out.stderr and out.stdout == ""
    data = json.loads(run_cli("diff", *ids, "--json").stdout)
    assert list(data["extension_code"]) == [str(package)] and data["overrides"] == []
    same = run_cli("diff", ids[0], ids[0])
    assert "code differs" not in same.stderr
