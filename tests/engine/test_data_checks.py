"""Pre-flight data checks: each mistake is one DataError line naming the field."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from engine.data.checks import check_data
from engine.errors import DataError

from data_helpers import COUNTING_VOCAB, config, counting_file, run_engine


def _error(cfg) -> DataError:
    with pytest.raises(DataError) as err:
        check_data(cfg)
    line = str(err.value)
    assert "\n" not in line and line.startswith(f"{err.value.field}: ")
    return err.value


@pytest.fixture
def good(tmp_path) -> Path:
    return counting_file(tmp_path / "good.npy", 2000)


def test_valid_data_passes_with_home_env_and_glob_expansion(tmp_path, good, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("E3_DATA", str(tmp_path))
    check_data(config(tmp_path, dataset={"paths": ["~/good.npy", "${E3_DATA}/g*.npy"]}))


def test_missing_file_and_empty_glob_and_unset_variable(tmp_path, good):
    assert "file not found" in str(_error(config(tmp_path, dataset={"paths": [str(tmp_path / "nope.npy")]})))
    err = _error(config(tmp_path, dataset={"paths": [str(tmp_path / "*.bin")]}))
    assert err.field == "dataset.paths" and "matches no files" in err.message
    err = _error(config(tmp_path, dataset={"paths": ["${E3_SURELY_UNSET_VAR}/x.npy"]}))
    assert "environment variable E3_SURELY_UNSET_VAR is not set" in err.message
    err = _error(config(tmp_path, dataset={"paths": [str(good)], "eval_paths": [str(tmp_path / "e.npy")]}))
    assert err.field == "dataset.eval_paths"


def test_size_not_a_multiple_of_the_dtype_is_corrupt(tmp_path, good):
    bad = tmp_path / "cut.npy"
    bad.write_bytes(good.read_bytes()[:-1])  # a truncated copy: odd byte count
    err = _error(config(tmp_path, dataset={"paths": [str(bad)]}))
    assert err.field == "dataset.paths" and "not a multiple of 2" in err.message


def test_ids_beyond_the_model_or_tokenizer_vocab(tmp_path):
    path = tmp_path / "ids.npy"
    ids = np.zeros(100_000, dtype=np.uint16)
    ids[-3] = 300  # only in the tail: the strided sample must include it
    ids.tofile(path)
    err = _error(config(tmp_path, model={"vocab_size": 384}, dataset={"paths": [str(path)],
                                                                       "tokenizer": {"vocab_size": 258}}))
    assert "token id 300" in err.message and "another tokenizer" in err.message
    ids[-3] = 5000
    ids.tofile(path)
    err = _error(config(tmp_path, model={"vocab_size": 384}, dataset={"paths": [str(path)],
                                                                       "tokenizer": {"vocab_size": 258}}))
    assert "model.vocab_size is 384" in err.message


def test_wrong_dtype_is_caught_by_the_id_check(tmp_path, good):
    err = _error(config(tmp_path, dataset={"paths": [str(good)], "dtype": "uint32"}))
    assert "uint32" in err.message and "dataset.dtype" in err.message


def test_uint16_cannot_hold_a_large_vocab(tmp_path):
    big = {"kind": "hf", "vocab_size": 100_278, "eos_token_id": 100_257, "pad_token_id": 100_277}
    err = _error(config(tmp_path, model={"vocab_size": 100_352},
                        dataset={"kind": "synthetic", "dtype": "uint16", "tokenizer": big}))
    assert err.field == "dataset.dtype"


def test_byte_tokenizer_settings_must_match(tmp_path, good):
    byte = {"kind": "byte", "vocab_size": 258, "eos_token_id": 0}
    err = _error(config(tmp_path, dataset={"kind": "synthetic", "tokenizer": byte}))
    assert err.field == "dataset.tokenizer.eos_token_id"


def test_hf_tokenizer_missing_unreadable_or_larger_than_the_config(tmp_path, good):
    hf = {"kind": "hf", "vocab_size": COUNTING_VOCAB, "path": str(tmp_path / "t.json")}
    err = _error(config(tmp_path, dataset={"paths": [str(good)], "tokenizer": hf}))
    assert err.field == "dataset.tokenizer.path" and "not found" in err.message
    (tmp_path / "t.json").write_text("{broken")
    err = _error(config(tmp_path, dataset={"paths": [str(good)], "tokenizer": hf}))
    assert "cannot read tokenizer" in err.message

    from tokenizers import Tokenizer, models
    vocab = {f"t{i}": i for i in range(300)}
    vocab["<|endoftext|>"] = 300
    Tokenizer(models.WordLevel(vocab, unk_token="t0")).save(str(tmp_path / "wl.json"))
    small = {"kind": "hf", "vocab_size": 260, "eos_token_id": 256, "pad_token_id": 257,
             "path": str(tmp_path / "wl.json")}
    err = _error(config(tmp_path, dataset={"kind": "synthetic", "tokenizer": small}))
    assert err.field == "dataset.tokenizer.vocab_size" and "301 ids" in err.message


def test_data_smaller_than_one_global_batch(tmp_path):
    small = counting_file(tmp_path / "small.npy", 30)  # 3 sequences of 8 < 4 per global batch
    err = _error(config(tmp_path, dataset={"paths": [str(small)]}))
    assert err.field == "dataset.paths" and "fewer than one global batch" in err.message
    err = _error(config(tmp_path, dataset={"kind": "synthetic", "synthetic_tokens": 20}))
    assert err.field == "dataset.synthetic_tokens"


def test_olmo_train_reports_a_data_error_in_one_line_before_creating_anything(tmp_path):
    runs = tmp_path / "runs"
    result = run_engine("bad-data", "--preset", "tiny-cpu", "--dataset.kind=numpy",
                        f"--dataset.paths=[{tmp_path}/missing.npy]", env={"OLMO_TUI_RUNS_DIR": str(runs)})
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "dataset.paths: file not found" in result.stderr
    assert not runs.exists()
