"""The embedded corpus: built from the standard library, cached, byte-tokenized, round-trips."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from engine.config import load_experiment
from engine.data.checks import check_data
from engine.data.embedded import build_embedded_corpus, stdlib_documents, stdlib_root
from engine.data.eval_loader import build_eval_loader
from engine.data.loader import build_train_loader
from engine.data.tokenizer import BYTE_EOS_ID, ByteTokenizer
from engine.errors import DataError

CAP = 400_000  # bytes: a few dozen stdlib files, built in well under a second


def _cfg(work_dir, **dataset):
    return load_experiment({"dataset": {"kind": "embedded", "sequence_length": 64, "work_dir": str(work_dir),
                                        "embedded_max_bytes": CAP, **dataset},
                            "data_loader": {"global_batch_size": 512},
                            "train_module": {"rank_microbatch_size": 256, "max_sequence_length": 64}})


def test_corpus_is_the_stdlib_byte_tokenized_and_round_trips(tmp_path):
    path, meta = build_embedded_corpus(str(tmp_path), CAP)
    ids = np.fromfile(path, dtype=np.uint16)
    assert ids.size == meta["tokens"] and ids.max() == BYTE_EOS_ID and ids[-1] == BYTE_EOS_ID
    docs = list(stdlib_documents(CAP))
    assert meta["documents"] == len(docs) > 5 and sum(len(t) for _, t in docs) <= CAP
    names = [name for name, _ in docs]
    top_level = [n for n in names if "/" not in n]
    assert top_level == sorted(top_level) and len(set(names)) == len(names)  # deterministic file order
    assert (stdlib_root() / names[0]).read_bytes() == docs[0][1]  # a real stdlib file
    ends = np.flatnonzero(ids == BYTE_EOS_ID)
    texts = [ByteTokenizer().decode(ids[a + 1:b]) for a, b in zip(np.concatenate([[-1], ends[:-1]]), ends, strict=True)]
    assert texts == [t.decode("utf-8") for _, t in docs]
    assert any('"""' in t for t in texts)  # sources with their docstrings


def test_corpus_is_cached_and_reused(tmp_path):
    path, meta = build_embedded_corpus(str(tmp_path), CAP)
    stamp = path.stat().st_mtime_ns
    again, meta_again = build_embedded_corpus(str(tmp_path), CAP)
    assert again == path and meta_again == meta and path.stat().st_mtime_ns == stamp
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([path.name, path.with_suffix(".json").name])


def test_two_processes_building_at_once_both_get_the_complete_corpus(tmp_path):
    code = ("import sys; from engine.data.embedded import build_embedded_corpus as b; "
            f"p, m = b(sys.argv[1], {CAP}); print(m['sha256'])")
    procs = [subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE, text=True,
                              cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))))
             for _ in range(2)]
    outputs = [p.communicate(timeout=60)[0].strip() for p in procs]
    assert all(p.returncode == 0 for p in procs) and outputs[0] == outputs[1] != ""
    path, meta = build_embedded_corpus(str(tmp_path), CAP)
    assert meta["sha256"] == outputs[0]
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_loaders_train_on_the_corpus_and_evaluate_on_its_heldout_tail(tmp_path):
    cfg = _cfg(tmp_path)
    check_data(cfg)
    train = build_train_loader(cfg, 0, 1)
    batch = next(iter(train))["input_ids"]
    assert batch.shape == (8, 64) and int(batch.max()) <= BYTE_EOS_ID
    text = ByteTokenizer().decode(batch[0])
    assert text.isprintable() or "\n" in text  # real text, not random ids
    evaluation = next(iter(build_eval_loader(cfg, 0, 1, max_batches=1)))
    assert evaluation["input_ids"].shape == (4, 64) and evaluation["label_mask"].any()
    assert "embedded corpus" in train.description


def test_unwritable_work_dir_and_wrong_tokenizer_are_user_errors(tmp_path):
    if not os.path.isdir("/proc/self"):
        pytest.skip("needs Linux /proc (a folder even root cannot write)")
    with pytest.raises(DataError) as err:
        check_data(_cfg("/proc/self/olmo-cache"))
    assert err.value.field == "dataset.work_dir" and "\n" not in str(err.value)
    with pytest.raises(DataError) as err:
        build_train_loader(_cfg(tmp_path, tokenizer={"kind": "hf", "vocab_size": 258}), 0, 1)
    assert err.value.field == "dataset.tokenizer.kind"
