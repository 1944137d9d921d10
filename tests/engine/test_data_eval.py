"""The evaluation loader: one padded document per instance, long documents split, ranks even."""

from __future__ import annotations

import numpy as np
import torch

from engine.data.eval_loader import build_eval_loader
from engine.data.sources import build_sources

from data_helpers import EOS, config, counting_file, write_documents

T = 8
PAD = 257


def _cfg(tmp_path, docs):
    write_documents(tmp_path / "eval.npy", docs)
    train = counting_file(tmp_path / "train.npy", 2000)
    return config(tmp_path, dataset={"paths": [str(train)], "eval_paths": [str(tmp_path / "eval.npy")]})


def _real_rows(batches):
    rows = []
    for batch in batches:
        for ids, mask in zip(batch["input_ids"], batch["label_mask"], strict=True):
            if mask.any():
                rows.append(ids[mask].tolist())
    return rows


def test_one_padded_document_per_instance_and_long_documents_split(tmp_path):
    docs = [[1, 2, 3], list(range(10, 30)), [7], list(range(40, 47))]  # 4, 21, 2, 8 tokens with EOS
    loader = build_eval_loader(_cfg(tmp_path, docs), 0, 1)
    batches = list(loader)
    assert all(b["input_ids"].shape == (2, T) and b["label_mask"].dtype == torch.bool for b in batches)
    expected = [[1, 2, 3, EOS], list(range(10, 18)), list(range(18, 26)), [26, 27, 28, 29, EOS],
                [7, EOS], list(range(40, 47)) + [EOS]]
    assert _real_rows(batches) == expected
    first = batches[0]
    assert first["label_mask"][0].tolist() == [True] * 4 + [False] * 4
    assert first["input_ids"][0, 4:].tolist() == [PAD] * 4
    assert len(batches) == 3  # 6 instances, 2 rows each
    again = list(loader)  # same batches every evaluation
    assert all(torch.equal(a["input_ids"], b["input_ids"]) for a, b in zip(batches, again, strict=True))


def test_ranks_get_equal_batch_counts_disjoint_rows_covering_every_document(tmp_path):
    docs = [[i + 1] * (i % 6 + 1) for i in range(9)]  # 9 short documents
    cfg = _cfg(tmp_path, docs)
    everything = _real_rows(build_eval_loader(cfg, 0, 1))
    per_rank = [list(build_eval_loader(cfg, r, 2)) for r in range(2)]
    assert len(per_rank[0]) == len(per_rank[1])  # collectives stay in step
    rows = [_real_rows(batches) for batches in per_rank]
    assert sorted(rows[0] + rows[1]) == sorted(everything) and len(everything) == 9
    padding_rows = [b for batches in per_rank for b in batches for m in b["label_mask"] if not m.any()]
    assert padding_rows  # 9 documents over 2 ranks x 2 rows: the last group is filled with padding


def test_max_batches_caps_and_heldout_tail_is_used_without_eval_paths(tmp_path):
    train = counting_file(tmp_path / "train.npy", 100_000)
    cfg = config(tmp_path, dataset={"paths": [str(train)]})
    loader = build_eval_loader(cfg, 0, 1, max_batches=3)
    assert len(list(loader)) == 3
    sources = build_sources(cfg)
    assert sources.train.end == sources.held_out.start  # disjoint, adjacent slices
    held = sources.held_out.read(0, T)
    first_row = next(iter(loader))["input_ids"][0].numpy()
    assert np.array_equal(first_row, held)
    # the held-out slice starts right after an EOS: whole documents only
    assert int(sources.train.read(sources.train.num_tokens - 1, sources.train.num_tokens)[0]) == EOS
