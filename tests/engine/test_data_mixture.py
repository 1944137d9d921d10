"""Source mixtures (dataset.sources): batches drawn to the ratios, exact resume, the same global
batches on any data-parallel world size, and the pre-flight's numbers for a source too small."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
import torch

from engine.data.checks import check_data, mixture_plan
from engine.data.loader import build_train_loader
from engine.data.mixture import draw_rows
from engine.config import ConfigError as ConfigErrorType
from engine.errors import DataError

from data_helpers import config

T, ROWS = 8, 20  # sequence length (data_helpers.config), instances per global batch
SIZES = {"web": 2400, "code": 2000, "books": 1600}  # tokens per source
RATIOS = {"web": 0.5, "code": 0.3, "books": 0.2}
FIRST_ID = np.cumsum([0, *SIZES.values()])  # source k holds ids FIRST_ID[k] .. FIRST_ID[k+1]-1


def _sources(tmp_path: Path, ratios=RATIOS, sizes=SIZES, **extra) -> dict:
    """One token file per source, ids 0, 1, 2 ... across all of them: every id is unique and
    says which source it came from."""
    sources = {}
    for k, (name, size) in enumerate(sizes.items()):
        path = tmp_path / f"{name}.npy"
        np.arange(FIRST_ID[k], FIRST_ID[k] + size).astype("uint16").tofile(path)
        sources[name] = {"paths": [str(path)], "ratio": ratios[name], "max_repetition": 8, **extra}
    return sources


def _source_of(ids: np.ndarray) -> np.ndarray:
    return np.searchsorted(FIRST_ID, ids, side="right") - 1


def _cfg(tmp_path, steps=200, **dataset):
    return config(tmp_path, dataset={"sources": _sources(tmp_path), **dataset},
                  data_loader={"global_batch_size": ROWS * T}, trainer={"max_duration": f"{steps} steps"})


def _take(loader, n):
    return [batch["input_ids"].clone() for batch in itertools.islice(iter(loader), n)]


def test_three_sources_match_their_ratios_by_tokens_over_200_steps(tmp_path):
    loader = build_train_loader(_cfg(tmp_path), 0, 1)
    ids = torch.cat(_take(loader, 200)).numpy()
    per_source = np.bincount(_source_of(ids.ravel()), minlength=3)
    shares = per_source / per_source.sum()
    assert np.all(np.abs(shares - list(RATIOS.values())) < 0.01), shares
    # stronger: at every batch boundary each source is within one instance of its target
    counts = [0, 0, 0]
    for k in range(1, 201):
        draw_rows(counts, list(RATIOS.values()), ROWS)
        assert all(abs(c - r * ROWS * k) < 1 for c, r in zip(counts, RATIOS.values(), strict=True))
    # the position and the per-source accounting agree with what the batches held
    state = loader.state_dict()
    assert state["counts"] == {"web": 2000, "code": 1200, "books": 800}
    assert list(state["tokens"].values()) == (per_source).tolist()
    assert loader.metrics(state) == {f"data/{name}/tokens": int(n) for name, n in zip(SIZES, per_source, strict=True)}


def test_every_batch_is_drawn_to_the_ratios_and_sources_repeat_in_new_orders(tmp_path):
    loader = build_train_loader(_cfg(tmp_path), 0, 1)
    batches = _take(loader, 120)
    for batch in batches:  # 20 rows at 0.5/0.3/0.2 = 10/6/4, every batch
        rows = np.bincount(_source_of(batch[:, 0].numpy()), minlength=3)
        assert rows.tolist() == [10, 6, 4]
    web = [tuple(row) for b in batches for row in b.tolist() if row[0] < FIRST_ID[1]]
    n = len(loader.sources[0].instances)  # 285 windows of web's training tokens
    first, second = web[:n], web[n:2 * n]
    assert len(set(first)) == n and set(first) == set(second) and first != second


def test_resume_at_step_50_gives_the_same_later_batches(tmp_path):
    cfg = _cfg(tmp_path)
    straight = _take(build_train_loader(cfg, 0, 1), 200)
    first = build_train_loader(cfg, 0, 1)
    _take(first, 50)
    state = first.state_dict()
    resumed = build_train_loader(cfg, 0, 1)
    resumed.load_state_dict(state)
    later = _take(resumed, 150)
    assert all(torch.equal(a, b) for a, b in zip(straight[50:], later, strict=True))


def test_resume_with_background_workers_counts_only_batches_handed_out(tmp_path):
    cfg = _cfg(tmp_path, steps=20)
    straight = _take(build_train_loader(cfg, 0, 1), 12)
    workers = build_train_loader(config(tmp_path, dataset={"sources": _sources(tmp_path)},
                                        data_loader={"global_batch_size": ROWS * T, "num_workers": 1}), 0, 1)
    head = _take(workers, 5)  # the worker has planned and read batches beyond these
    assert workers.state_dict()["batches_processed"] == 5
    resumed = build_train_loader(cfg, 0, 1)
    resumed.load_state_dict(workers.state_dict())
    assert all(torch.equal(a, b) for a, b in zip(straight, head + _take(resumed, 7), strict=True))


def test_two_ranks_see_the_same_global_batches_as_one(tmp_path):
    cfg = _cfg(tmp_path)
    one = _take(build_train_loader(cfg, 0, 1), 30)
    ranks = [_take(build_train_loader(cfg, r, 2), 30) for r in range(2)]
    four = [_take(build_train_loader(cfg, r, 4), 30) for r in range(4)]
    for k in range(30):
        assert torch.equal(one[k], torch.cat([ranks[0][k], ranks[1][k]]))
        assert torch.equal(one[k], torch.cat([four[r][k] for r in range(4)]))
    # and a position saved on 2 ranks resumes on 1
    two = build_train_loader(cfg, 1, 2)
    _take(two, 10)
    single = build_train_loader(cfg, 0, 1)
    single.load_state_dict(two.state_dict())
    assert torch.equal(_take(single, 1)[0], one[10])


def test_a_source_too_small_for_its_ratio_is_refused_with_the_numbers(tmp_path):
    sources = _sources(tmp_path)
    sources["books"]["max_repetition"] = 4
    cfg = config(tmp_path, dataset={"sources": sources}, data_loader={"global_batch_size": ROWS * T},
                 trainer={"max_duration": "200 steps"})
    with pytest.raises(DataError) as error:
        check_data(cfg)
    # books: 1600 tokens - 80 held out = 1520 -> 190 windows of 8 = 1,520 tokens; the run needs
    # 0.2 x 200 steps x 20 rows = 800 rows = 6,400 tokens
    assert error.value.field == "dataset.sources.books"
    assert str(error.value) == (
        "dataset.sources.books: source 'books' is too small for ratio 0.2: the run needs 6,400 tokens of "
        "it (4.21 epochs) but it holds 1,520 tokens x max_repetition 4 = 6,080; lower its ratio, raise its "
        "max_repetition, shorten the run or add data")
    plan = {p.name: p for p in mixture_plan(cfg)}
    assert (plan["books"].tokens_needed, plan["books"].instances) == (6400, 190)


def test_a_run_lengthened_past_max_repetition_stops_at_the_source(tmp_path):
    sources = _sources(tmp_path)
    cfg = config(tmp_path, dataset={"sources": sources}, data_loader={"global_batch_size": ROWS * T})
    loader = build_train_loader(cfg, 0, 1)
    # web: 285 windows x max_repetition 8 = 2280 rows = 228 batches of 10; the 229th needs more
    assert len(_take(loader, 228)) == 228
    with pytest.raises(DataError, match="dataset.sources.web: the run has read all 2,280 instances"):
        _take(loader, 1)


def test_mixture_rules_are_config_errors(tmp_path):
    from engine.config import ConfigError, load_experiment

    base = {"kind": "numpy", "sources": {"a": {"paths": ["a.npy"], "ratio": 0.5},
                                         "b": {"paths": ["b.npy"], "ratio": 0.4}}}
    with pytest.raises(ConfigError, match=r"dataset.sources: the ratios sum to 0.9 \(a 0.5 \+ b 0.4\), not 1"):
        load_experiment({"dataset": base})
    with pytest.raises(ConfigError, match="either dataset.paths"):
        load_experiment({"dataset": {**base, "paths": ["c.npy"],
                                     "sources": {"a": {"paths": ["a.npy"], "ratio": 1}}}})
    with pytest.raises(ConfigError, match="a mixture has no epochs"):
        load_experiment({"dataset": {**base, "sources": {"a": {"paths": ["a.npy"], "ratio": 1}}},
                         "trainer": {"max_duration": "2 epochs"}})


def test_named_eval_sets_replace_the_held_out_tails(tmp_path):
    from engine.data.eval_loader import build_eval_loaders
    from engine.data.sources import build_sources

    held = tmp_path / "held.npy"
    np.arange(7000, 7100).astype("uint16").tofile(held)
    cfg = _cfg(tmp_path, eval_sets={"other": {"paths": [str(held)]}})
    sources = build_sources(cfg)
    assert {n: s.num_tokens for n, s in sources.mixture.items()} == SIZES  # nothing held out of the sources
    loaders = build_eval_loaders(cfg, 0, 1)
    assert list(loaders) == ["other"]
    ids = next(iter(loaders["other"]))["input_ids"]
    assert ids[0, :T].tolist() == list(range(7000, 7000 + T))
    # without eval_sets, each source's tail is its own held-out set
    tails = build_eval_loaders(_cfg(tmp_path), 0, 1)
    assert list(tails) == list(SIZES)
    assert {n: s.num_tokens for n, s in build_sources(_cfg(tmp_path)).eval_sets.items()} == \
        {n: size // 20 for n, size in SIZES.items()}
    # and with a plain dataset.paths run: the named set instead of the training data's tail
    flat = config(tmp_path, dataset={"paths": [str(tmp_path / "web.npy")],
                                     "eval_sets": {"other": {"paths": [str(held)]}}})
    assert build_sources(flat).train.num_tokens == SIZES["web"] and list(build_eval_loaders(flat, 0, 1)) == ["other"]
    with pytest.raises(DataError, match="dataset.eval_sets.other.paths: file not found"):
        check_data(_cfg(tmp_path, eval_sets={"other": {"paths": [str(tmp_path / "none.npy")]}}))


def _gathered_global_batches(cfg_data: dict, steps: int) -> list:
    """In a real process group: this rank's loader's batches, all-gathered into global ones."""
    import torch.distributed as dist

    from engine.config import load_experiment

    loader = build_train_loader(load_experiment(cfg_data), dist.get_rank(), dist.get_world_size())
    out = []
    for batch in _take(loader, steps):
        parts = [torch.empty_like(batch) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, batch)
        out.append(torch.cat(parts))
    return out


def test_two_processes_see_the_same_global_batches_as_one(tmp_path):
    from engine.testing import run_distributed_test

    cfg = _cfg(tmp_path)
    one = _take(build_train_loader(cfg, 0, 1), 12)
    ranks = run_distributed_test(_gathered_global_batches, world_size=2,
                                 args=(cfg.model_dump(mode="json", exclude_none=True), 12))
    for gathered in ranks:
        assert all(torch.equal(a, b) for a, b in zip(one, gathered, strict=True))


def test_a_source_of_another_registered_kind_joins_the_mixture(tmp_path):
    """A researcher's data source (engine/extend.py's registry: the test extension's `counting`,
    ids 0..199 from a Python generator) mixed with token files at 0.25 / 0.75."""
    from extension_helpers import write_extension

    package = write_extension(tmp_path / "ext", name="mix_ext", suffix="_mix")  # registries are per process
    sources = _sources(tmp_path)
    mixture = {"code": {**sources["code"], "ratio": 0.75},  # ids 2400..4399: never the generator's
               "count": {"kind": "counting_mix", "ratio": 0.25, "max_repetition": 8}}
    cfg = config(tmp_path, extensions=[str(package)], dataset={"sources": mixture},
                 data_loader={"global_batch_size": ROWS * T}, trainer={"max_duration": "20 steps"})
    check_data(cfg)
    batches = _take(build_train_loader(cfg, 0, 1), 20)
    for batch in batches:
        code_rows = batch[:, 0] >= FIRST_ID[1]
        assert int(code_rows.sum()) == 15 and int(batch[~code_rows].max()) < 200  # 20 rows at 0.75 / 0.25
    with pytest.raises(ConfigErrorType, match="dataset.sources.count.kind: unknown data source 'countin_mix'"):
        config(tmp_path, extensions=[str(package)],
               dataset={"sources": {**mixture, "count": {**mixture["count"], "kind": "countin_mix"}}})
