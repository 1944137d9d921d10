"""The training loader: order by (seed, epoch), rank sharding, exact resume, workers."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engine.data.loader import build_train_loader
from engine.errors import DataError

from data_helpers import COUNTING_VOCAB, config, counting_file

T = 8  # sequence length in data_helpers.config


def _rows(batch) -> list:
    return [tuple(row) for row in batch["input_ids"].tolist()]


def _epoch(loader) -> list:
    return [batch["input_ids"].clone() for batch in loader]


@pytest.fixture
def cfg(tmp_path):
    path = counting_file(tmp_path / "train.npy", 4000)
    return config(tmp_path, dataset={"paths": [str(path)]})


def test_batches_have_the_contract_shape(cfg):
    loader = build_train_loader(cfg, 0, 1)
    batch = next(iter(loader))
    assert batch["input_ids"].shape == (32 // T, T)
    assert batch["input_ids"].dtype == torch.long
    # train/held-out split: 5 % of 4000 tokens is held out (snapped to a document start)
    assert loader.total_batches == len(loader.instances) // 4 > 0


def test_order_is_fixed_per_seed_and_epoch_and_changes_between_epochs(cfg, tmp_path):
    first, second = build_train_loader(cfg, 0, 1), build_train_loader(cfg, 0, 1)
    epoch1_a, epoch1_b = _epoch(first), _epoch(second)
    assert all(torch.equal(a, b) for a, b in zip(epoch1_a, epoch1_b, strict=True))
    assert first.epoch == 1 and first.batches_processed == first.total_batches
    epoch2 = _epoch(first)
    assert first.epoch == 2
    assert not all(torch.equal(a, b) for a, b in zip(epoch1_a, epoch2, strict=True))
    # each epoch is a permutation of the same windows: every full batch holds distinct instances
    rows1 = sorted(r for b in epoch1_a for r in _rows({"input_ids": b}))
    rows2 = sorted(r for b in epoch2 for r in _rows({"input_ids": b}))
    assert len(set(rows1)) == len(rows1) and len(rows1) == first.total_batches * 4
    other_seed = build_train_loader(config(tmp_path, dataset={"paths": cfg.dataset.paths},
                                           data_loader={"seed": 4}), 0, 1)
    assert not torch.equal(next(iter(other_seed))["input_ids"], epoch1_a[0])
    assert len(rows2) == len(rows1)


def test_windows_are_contiguous_chunks_of_the_concatenated_files(tmp_path):
    a = counting_file(tmp_path / "a.npy", 1000)
    b = counting_file(tmp_path / "b.npy", 1003)  # odd sizes: windows straddle the file boundary
    cfg = config(tmp_path, dataset={"paths": [str(tmp_path / "*.npy")]})
    loader = build_train_loader(cfg, 0, 1)
    joined = np.concatenate([np.fromfile(a, np.uint16), np.fromfile(b, np.uint16)]).astype(np.int64)
    index = int(loader.global_order(1)[0])
    window = torch.from_numpy(joined[index * T:(index + 1) * T])
    assert torch.equal(next(iter(loader))["input_ids"][0], window)


def test_ranks_are_disjoint_and_cover_the_global_batch(cfg):
    single = build_train_loader(cfg, 0, 1)
    ranks = [build_train_loader(cfg, r, 2) for r in range(2)]
    for global_batch, *rank_batches in zip(single, *ranks, strict=True):
        assert [b["input_ids"].shape[0] for b in rank_batches] == [2, 2]
        parts = [set(_rows(b)) for b in rank_batches]
        assert not parts[0] & parts[1]
        assert torch.equal(torch.cat([b["input_ids"] for b in rank_batches]), global_batch["input_ids"])


@pytest.mark.parametrize("workers", [0, 1])
def test_resume_mid_epoch_and_across_epochs_continues_exactly(cfg, tmp_path, workers):
    if workers:
        cfg = config(tmp_path, dataset={"paths": cfg.dataset.paths},
                     data_loader={"num_workers": 1, "prefetch_factor": 2})
    reference = build_train_loader(cfg, 1, 2)
    total = reference.total_batches
    expected = _epoch(reference) + _epoch(reference)  # two epochs, uninterrupted

    for stop in (3, total, total + 2):
        loader = build_train_loader(cfg, 1, 2)
        seen, stream = [], None
        while len(seen) < stop:  # the trainer's habit: iterate again when an epoch ends
            stream = iter(loader)
            for batch in stream:
                seen.append(batch["input_ids"].clone())
                if len(seen) == stop:
                    break
        state = loader.state_dict()
        del stream  # the killed process
        resumed = build_train_loader(cfg, 1, 2)
        resumed.load_state_dict(state)
        rest = []
        while len(seen) + len(rest) < 2 * total:
            rest.extend(b["input_ids"].clone() for b in resumed)
        assert all(torch.equal(a, b) for a, b in zip(seen + rest, expected, strict=True)), f"stopped after {stop}"


def test_resume_on_another_world_size_keeps_the_global_order(cfg):
    one = build_train_loader(cfg, 0, 1)
    stream = iter(one)
    for _ in range(2):
        next(stream)
    expected_next = next(stream)["input_ids"]
    state = build_train_loader(cfg, 0, 1)
    state.batches_processed = 2
    halves = []
    for rank in range(2):
        loader = build_train_loader(cfg, rank, 2)
        loader.load_state_dict(state.state_dict())
        halves.append(next(iter(loader))["input_ids"])
    assert torch.equal(torch.cat(halves), expected_next)


def test_changed_data_or_batch_size_refuses_to_resume(cfg, tmp_path):
    state = build_train_loader(cfg, 0, 1).state_dict()
    counting_file(tmp_path / "extra.npy", 800)
    changed = config(tmp_path, dataset={"paths": [*cfg.dataset.paths, str(tmp_path / "extra.npy")]})
    with pytest.raises(DataError, match="fingerprint") as err:
        build_train_loader(changed, 0, 1).load_state_dict(state)
    assert err.value.field == "dataset" and "\n" not in str(err.value)
    bigger = config(tmp_path, dataset={"paths": cfg.dataset.paths}, data_loader={"global_batch_size": 64})
    with pytest.raises(DataError, match="global_batch_size"):
        build_train_loader(bigger, 0, 1).load_state_dict(state)


def test_synthetic_dataset_is_deterministic_by_seed(tmp_path):
    def first_batch(seed):
        cfg = config(tmp_path, dataset={"kind": "synthetic", "synthetic_tokens": 5000},
                     data_loader={"seed": seed})
        return next(iter(build_train_loader(cfg, 0, 1)))["input_ids"]

    a, b, c = first_batch(1), first_batch(1), first_batch(2)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert int(a.max()) < COUNTING_VOCAB and int(a.min()) >= 0
    assert len(torch.unique(a)) > 20  # random ids, not a constant


def test_mock_batch_matches_real_batches(cfg):
    loader = build_train_loader(cfg, 0, 2)
    real, mock = next(iter(loader))["input_ids"], loader.mock_batch()["input_ids"]
    assert mock.shape == real.shape and mock.dtype == real.dtype
