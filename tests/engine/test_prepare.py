"""`olmo-train prepare` end to end in real subprocesses: byte tokenizer, a real local
tokenizer.json (trained here with the `tokenizers` library), and each user error."""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path

import numpy as np
import pytest

from engine.data.prepare import main_prepare
from engine.data.tokenizer import ByteTokenizer, HFTokenizer

from data_helpers import run_engine

DOCS = ["The quick brown fox jumps over the lazy dog.", "Ünïcödé survives: ✓", "third document\nwith lines"]


def prepare(*args):
    return run_engine("prepare", *map(str, args))


def _split_on(ids: np.ndarray, eos: int) -> list:
    ends = np.flatnonzero(ids == eos)
    return [ids[a + 1 if i else 0:b] for i, (a, b) in enumerate(zip(np.concatenate([[-1], ends[:-1]]), ends, strict=True))]


@pytest.fixture
def jsonl(tmp_path) -> Path:
    path = tmp_path / "docs.jsonl"
    path.write_text("".join(json.dumps({"text": d, "id": i}) + "\n" for i, d in enumerate(DOCS[:2])))
    return path


def test_byte_tokenizer_jsonl_gz_and_text_round_trip(tmp_path, jsonl):
    text = tmp_path / "notes.txt"
    text.write_text(DOCS[2])
    zipped = tmp_path / "more.jsonl.gz"
    with gzip.open(zipped, "wt") as handle:
        handle.write(json.dumps({"text": "zipped"}) + "\n\n")  # blank lines are skipped
    out = tmp_path / "train.npy"
    result = prepare(jsonl, text, zipped, "-o", out)
    assert result.returncode == 0, result.stderr
    ids = np.fromfile(out, dtype=np.uint16)
    docs = [ByteTokenizer().decode(d) for d in _split_on(ids, 256)]
    assert docs == [*DOCS, "zipped"]
    assert ids[-1] == 256 and (ids == 256).sum() == 4
    summary = result.stdout
    assert "4 documents" in summary and f"{ids.size:,} tokens" in summary and "uint16" in summary
    assert str(out) in summary
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp files left


def _train_tokenizer(path: Path) -> Path:
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers, decoders

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=["<unk>", "<|endoftext|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(DOCS * 20, trainer=trainer)
    tok.save(str(path))
    return path


def test_local_hf_tokenizer_json(tmp_path, jsonl):
    tokenizer_json = _train_tokenizer(tmp_path / "tokenizer.json")
    out = tmp_path / "hf.npy"
    result = prepare(jsonl, "-o", out, "--tokenizer", tokenizer_json)
    assert result.returncode == 0, result.stderr
    hf = HFTokenizer(str(tokenizer_json))
    assert hf.eos_token_id == 1  # found by name: <|endoftext|>
    ids = np.fromfile(out, dtype=np.uint16)
    docs = _split_on(ids, hf.eos_token_id)
    assert [hf.decode(d) for d in docs] == DOCS[:2]
    assert len(docs[0]) < len(DOCS[0].encode())  # real BPE merges, not bytes
    assert "2 documents" in result.stdout and "--dataset.tokenizer.kind=hf" in result.stdout
    assert f"--dataset.tokenizer.vocab_size={hf.vocab_size}" in result.stdout


def test_custom_text_field_and_uint32(tmp_path):
    src = tmp_path / "c.jsonl"
    src.write_text(json.dumps({"body": "abc"}) + "\n")
    out = tmp_path / "c.npy"
    result = prepare(src, "-o", out, "--text-field", "body", "--dtype", "uint32")
    assert result.returncode == 0, result.stderr
    assert np.fromfile(out, dtype=np.uint32).tolist() == [97, 98, 99, 256]


@pytest.mark.parametrize("case", ["missing", "bad_json", "no_field", "exists", "no_folder", "unwritable",
                                  "bad_tokenizer"])
def test_user_errors_are_one_line_exit_2_and_leave_nothing(tmp_path, jsonl, case, capsys):
    # In-process (the subprocess path is proven above); same code, a second instead of seven.
    out = tmp_path / "out.npy"
    args = [jsonl, "-o", out]
    expect = ""
    if case == "missing":
        args, expect = [tmp_path / "nope.jsonl", "-o", out], "INPUT: file not found"
    elif case == "bad_json":
        bad = tmp_path / "bad.jsonl"
        bad.write_text('{"text": "fine"}\n{"text": oops}\n')
        args, expect = [bad, "-o", out], f"{bad}:2: not valid JSON"
    elif case == "no_field":
        args, expect = [jsonl, "-o", out, "--text-field", "body"], f"{jsonl}:1: no string field 'body'"
    elif case == "exists":
        out.write_bytes(b"keep")
        expect = "--output:"
    elif case == "no_folder":
        args, expect = [jsonl, "-o", tmp_path / "nowhere" / "out.npy"], "--output: folder"
    elif case == "unwritable":
        if not os.path.isdir("/proc/self"):
            pytest.skip("needs Linux /proc (a folder even root cannot write)")
        args, expect = [jsonl, "-o", "/proc/self/out.npy"], "--output: cannot write"
    elif case == "bad_tokenizer":
        broken = tmp_path / "tokenizer.json"
        broken.write_text("{not json")
        args, expect = [jsonl, "-o", out, "--tokenizer", broken], "--tokenizer: cannot read tokenizer"
    code = main_prepare([str(a) for a in args])
    stderr = capsys.readouterr().err
    assert code == 2
    assert stderr.count("\n") == 1 and expect in stderr
    leftovers = sorted(p.name for p in tmp_path.iterdir())
    assert "out.npy" not in leftovers or case == "exists"
    assert not [name for name in leftovers if name.endswith(".tmp")]
    if case == "exists":
        assert out.read_bytes() == b"keep"
