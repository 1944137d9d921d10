"""olmo-train's pre-flight: user mistakes fail before training with one line, exit 2, and leave
no run directory behind. Most cases call the entry in-process (the same main() the console
script runs); one runs a real subprocess to check the process-level contract."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from engine.cli import main

REPO = Path(__file__).resolve().parents[2]
SMALL = ["--model.d_model=64", "--model.n_layers=2", "--model.n_heads=2", "--dataset.sequence_length=64",
         "--train_module.max_sequence_length=64", "--data_loader.global_batch_size=512",
         "--train_module.rank_microbatch_size=256"]


def _tokens(path: Path, ids) -> Path:
    np.asarray(ids, dtype=np.uint16).tofile(path)
    return path


def _hf_tokenizer(path: Path, size: int) -> Path:
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel

    Tokenizer(WordLevel(vocab={f"w{i}": i for i in range(size)}, unk_token="w0")).save(str(path))
    return path


def _numpy(path: Path) -> list:
    return ["--dataset.kind=numpy", f"--dataset.paths=['{path}']"]


CASES = {
    "missing data path": (lambda tmp: _numpy(tmp / "nope" / "tokens.npy"), "dataset.paths", "not found"),
    "corrupt data file": (lambda tmp: _numpy(_write(tmp / "odd.npy", b"\x01\x02\x03")), "dataset.paths",
                          "not a multiple"),
    "ids beyond the model's vocab": (lambda tmp: _numpy(_tokens(tmp / "big.npy", np.arange(20000) % 1000)),
                                     "dataset.paths", "model.vocab_size"),
    "tokenizer bigger than the configured vocab": (
        lambda tmp: [*_numpy(_tokens(tmp / "ok.npy", np.arange(20000) % 250)), "--dataset.tokenizer.kind=hf",
                     f"--dataset.tokenizer.path={_hf_tokenizer(tmp / 'tokenizer.json', 500)}",
                     "--dataset.tokenizer.vocab_size=384"],
        "dataset.tokenizer.vocab_size", "500 ids"),
    "save folder under a file": (lambda tmp: [f"--trainer.save_folder={_write(tmp / 'afile', b'x')}/ckpt"],
                                 "trainer.save_folder", "not a directory"),
    "load_path with no checkpoint": (lambda tmp: [f"--trainer.load_path={tmp}"], "trainer.load_path",
                                     "no complete checkpoint"),
}


def _write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("case", list(CASES))
def test_user_errors_fail_before_training_and_leave_nothing(case, tmp_path, capsys):
    make_args, field, words = CASES[case]
    run_dir = tmp_path / "runs" / "bad"
    code = main(["bad", "--preset", "tiny-cpu", "--run-dir", str(run_dir), *SMALL, *make_args(tmp_path)])
    out, err = capsys.readouterr()
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {field}") and words in lines[0], err
    assert not run_dir.exists() and not (tmp_path / "runs").exists()


def test_existing_run_dir_survives_a_user_error(tmp_path, capsys):
    run_dir = tmp_path / "kept"
    run_dir.mkdir()
    (run_dir / "metrics.jsonl").write_text('{"step": 1}\n')
    code = main(["kept", "--preset", "tiny-cpu", "--run-dir", str(run_dir), *SMALL,
                 *_numpy(tmp_path / "missing.npy")])
    assert code == 2 and "dataset.paths" in capsys.readouterr().err
    assert (run_dir / "metrics.jsonl").read_text() == '{"step": 1}\n'


@pytest.mark.parametrize("name", ["../escape", "a/b", ".hidden", ""])
def test_run_names_cannot_escape_the_runs_dir(name, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("OLMO_TUI_RUNS_DIR", str(tmp_path / "runs"))
    code = main([name, "--preset", "tiny-cpu", *SMALL]) if name else main(
        ["--preset", "tiny-cpu", "--run_name=", *SMALL])
    assert code == 2
    assert "run_name" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists() and not (tmp_path / "escape").exists()


def test_process_level_contract_for_a_missing_data_path(tmp_path):
    run_dir = tmp_path / "runs" / "bad"
    result = subprocess.run(
        [sys.executable, "-m", "engine", "bad", "--preset", "tiny-cpu", "--run-dir", str(run_dir), *SMALL,
         *_numpy(tmp_path / "missing.npy")], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"error: dataset.paths: file not found: {tmp_path / 'missing.npy'}"]
    assert "Traceback" not in result.stderr and not run_dir.exists()


def test_dry_run_prints_the_config_and_creates_nothing(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("OLMO_TUI_RUNS_DIR", str(tmp_path / "runs"))
    assert main(["dry", "--preset", "tiny-cpu", "--dry-run"]) == 0
    assert 'run_name = "dry"' in capsys.readouterr().out
    assert not (tmp_path / "runs").exists()


def test_no_arguments_is_a_usage_error_not_a_training_run(tmp_path, monkeypatch, capsys):
    from engine.cli import main

    monkeypatch.chdir(tmp_path)
    assert main([]) == 2
    assert "--preset" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())  # no run dir was made
