"""Conversion and fine-tuning mismatches fail with one line naming what is wrong, exit 2, and
leave nothing behind: no DST, no staging dir, no run dir."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("transformers")

from hf_helpers import leftovers, make_hf_model  # noqa: E402

from engine.cli import main  # noqa: E402
from engine.hf.cli import main_convert  # noqa: E402

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def hf_dir(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("hf") / "tiny-llama"
    make_hf_model(path, "llama")
    return path


@pytest.fixture(scope="module")
def converted(hf_dir, tmp_path_factory) -> Path:
    dst = tmp_path_factory.mktemp("engine") / "tiny-llama"
    assert main_convert(["from-hf", str(hf_dir), str(dst), "--no-validate"]) == 0
    return dst


def _copy_hf(hf_dir: Path, to: Path) -> Path:
    to.mkdir()
    for file in hf_dir.iterdir():
        (to / file.name).write_bytes(file.read_bytes())
    return to


def _edit_config(path: Path, **changes) -> None:
    config = json.loads((path / "config.json").read_text())
    config.update(changes)
    (path / "config.json").write_text(json.dumps(config))


def _drop_tensor(path: Path, name: str) -> None:
    from safetensors.torch import load_file, save_file

    tensors = load_file(str(path / "model.safetensors"))
    del tensors[name]
    save_file(tensors, str(path / "model.safetensors"), metadata={"format": "pt"})


def _big_tokenizer(path: Path, size: int) -> None:
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel

    Tokenizer(WordLevel(vocab={f"w{i}": i for i in range(size)}, unk_token="w0")).save(str(path / "tokenizer.json"))


FROM_HF_CASES = {
    "unknown architecture": (lambda p: _edit_config(p, model_type="gpt_neox"), "config.json: model_type",
                             "unknown architecture 'gpt_neox': supported are llama, olmo2"),
    "missing tensor": (lambda p: _drop_tensor(p, "model.layers.1.mlp.up_proj.weight"), "SRC",
                       "model.layers.1.mlp.up_proj.weight"),
    "wrong shape": (lambda p: _edit_config(p, intermediate_size=128), "SRC: model.layers.0.mlp.gate_proj.weight",
                    "has shape [160, 64] but config.json implies [128, 64]"),
    "extra layer's tensors": (lambda p: _edit_config(p, num_hidden_layers=1), "SRC", "do not belong"),
    "tokenizer larger than the vocab": (lambda p: _big_tokenizer(p, 500), "tokenizer.json",
                                        "emits 500 ids but the model embeds only 384"),
    "rope scaling": (lambda p: _edit_config(p, rope_parameters={"rope_type": "dynamic", "rope_theta": 5e5,
                                                                "factor": 8.0}),
                     "config.json: rope_parameters.rope_type", "'dynamic' is not supported"),
    "no weights": (lambda p: (p / "model.safetensors").unlink(), "SRC", "no *.safetensors"),
}


@pytest.mark.parametrize("case", list(FROM_HF_CASES))
def test_from_hf_mismatch_fails_before_writing(case, hf_dir, tmp_path, capsys):
    damage, field, words = FROM_HF_CASES[case]
    src = _copy_hf(hf_dir, tmp_path / "src")
    damage(src)
    dst = tmp_path / "out" / "engine"  # its parent does not exist either: must not be left behind
    assert main_convert(["from-hf", str(src), str(dst)]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {field}") and words in lines[0], lines
    assert not (tmp_path / "out").exists() and leftovers(tmp_path) == []


def test_existing_destination_is_never_overwritten(hf_dir, tmp_path, capsys):
    dst = tmp_path / "taken"
    dst.mkdir()
    (dst / "keep.txt").write_text("mine")
    assert main_convert(["from-hf", str(hf_dir), str(dst)]) == 2
    assert "already exists" in capsys.readouterr().err
    assert [p.name for p in dst.iterdir()] == ["keep.txt"]


def test_to_hf_without_a_checkpoint_or_with_a_lying_config(converted, tmp_path, capsys):
    assert main_convert(["to-hf", str(tmp_path), str(tmp_path / "out")]) == 2
    assert "no complete checkpoint" in capsys.readouterr().err
    # A checkpoint whose config.toml describes another model: caught from the DCP metadata.
    fake = _copy_tree(converted, tmp_path / "fake")
    text = (fake / "config.toml").read_text().replace("mlp_hidden_size = 160", "mlp_hidden_size = 192")
    (fake / "config.toml").write_text(text)
    assert main_convert(["to-hf", str(fake), str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "has shape [160, 64]" in err[0] and "implies [192, 64]" in err[0]
    assert not (tmp_path / "out").exists() and leftovers(tmp_path) == []


def _copy_tree(src: Path, dst: Path) -> Path:
    import shutil

    shutil.copytree(src, dst)
    return dst


FINETUNE_CASES = {
    "another architecture": (["--model.d_model=128"], "model.d_model",
                             "have d_model = 64 but this config has 128"),
    "another tokenizer": (["--dataset.kind=synthetic", "--dataset.tokenizer.kind=hf",
                           "--dataset.tokenizer.vocab_size=300", "--dataset.tokenizer.eos_token_id=0",
                           "--dataset.tokenizer.pad_token_id=1"], "dataset.tokenizer.vocab_size",
                          "byte tokenizer of 258 ids but the dataset's tokenizer has 300"),
}


@pytest.mark.parametrize("case", list(FINETUNE_CASES))
def test_finetune_mismatch_fails_in_preflight(case, converted, tmp_path, capsys):
    overrides, field, words = FINETUNE_CASES[case]
    run_dir = tmp_path / "runs" / "ft"
    code = main(["ft", "--config", str(converted / "config.toml"), "--run-dir", str(run_dir), *overrides])
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(lines) == 1 and lines[0].startswith(f"error: {field}") and words in lines[0], lines
    assert not run_dir.exists()


def test_olmo_train_convert_is_a_real_subcommand(hf_dir, tmp_path):
    """The console entry, as a process: exit code 2 and one line for a user mistake."""
    result = subprocess.run([sys.executable, "-m", "engine", "convert", "from-hf", str(tmp_path / "nope"),
                             str(tmp_path / "out")], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [f"error: SRC: {tmp_path / 'nope'} is not a directory"]


def test_to_hf_takes_a_run_name_or_id(converted, tmp_path, capsys, monkeypatch):
    """GUIDE's `olmo-train convert to-hf ft-demo ...`: SRC names a run under the runs root (the
    newest of that name, or one id), as `olmo-tui runs` lists it, wherever the command runs."""
    root = tmp_path / "runs"
    monkeypatch.setenv("OLMO_TUI_RUNS_DIR", str(root))
    monkeypatch.chdir(tmp_path)
    older = _copy_tree(converted, root / "ft-demo-20261201-090000-aaaa")
    newer = _copy_tree(converted, root / "ft-demo-20261202-090000-bbbb")
    assert main_convert(["to-hf", "ft-demo", str(tmp_path / "hf"), "--no-validate"]) == 0
    assert f"SRC: run ft-demo -> {newer}" in capsys.readouterr().err
    assert (tmp_path / "hf" / "config.json").is_file()
    assert main_convert(["to-hf", older.name, str(tmp_path / "hf-older"), "--no-validate"]) == 0
    assert f"-> {older}" in capsys.readouterr().err
    # Neither a path nor a run: one line, exit 2, nothing written.
    assert main_convert(["to-hf", "no-such-run", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: SRC: no-such-run does not exist, and no run has that name or id under {root}"]
    assert not (tmp_path / "out").exists()
