"""The training loader of a source mixture (`dataset.sources`): deterministic, rank-sharded,
resumable global batches drawn to the sources' ratios.

Global batch k: its B rows' sources come from `mixture.draw_rows` (a function of the rows drawn
so far per source, nothing else); source i's c-th row is instance `perm(seed, i, c // n_i)[c % n_i]`
of its n_i instances (a new permutation each pass over the source). Rank r of W takes rows
[r*B/W, (r+1)*B/W) of each global batch, so the global batches are the same for every W.

Position: the rows drawn per source and the data tokens (padding left out) seen per source,
after the batch handed out last (`state_dict()`); a resume restores them and continues with the
next global batch, also on another world size. The counts are advanced when a batch is handed
out; with background workers the batches' compositions are planned ahead in this process (the
workers only read tokens) and never counted before they are handed out.

Iteration never ends by itself (a mixture has no epoch): the trainer stops at its step count.
A source asked for more rows than `max_repetition` allows raises DataError (the pre-flight
refuses such a run before it starts; this guards a run lengthened on resume).
"""

from __future__ import annotations

import hashlib
import zlib
from typing import Any, Dict, Iterator, List, Optional, Sequence

import numpy as np
import torch

from engine.errors import DataError

from .mixture import draw_rows

STATE_VERSION = 1


class _Source:
    def __init__(self, name: str, instances, ratio: float, max_repetition: float, seed: int):
        self.name, self.instances, self.ratio = name, instances, ratio
        self.allowed = int(np.floor(len(instances) * max_repetition + 1e-9))
        self.max_repetition = max_repetition
        self.key = zlib.crc32(name.encode())
        self.seed = seed
        self._perm: Optional[tuple] = None

    def instance_of(self, draws: np.ndarray) -> np.ndarray:
        """Instance index of each draw number (draws of one source, any order)."""
        n = len(self.instances)
        out = np.empty(len(draws), dtype=np.int64)
        for epoch in np.unique(draws // n):
            if self._perm is None or self._perm[0] != (self.seed, epoch):
                rng = np.random.default_rng([self.seed, self.key, int(epoch)])
                self._perm = ((self.seed, epoch), rng.permutation(n))
            hit = draws // n == epoch
            out[hit] = self._perm[1][draws[hit] % n]
        return out


class _Plans(torch.utils.data.Dataset):
    """Map-style reader for DataLoader workers: the 'index' is a batch plan (rows per source)."""

    def __init__(self, sources: Sequence[_Source]):
        self.sources = sources

    def __getitem__(self, plan) -> Dict[str, torch.Tensor]:
        row_sources, row_instances = plan
        parts: Dict[str, np.ndarray] = {}
        for i, source in enumerate(self.sources):
            rows = np.flatnonzero(row_sources == i)
            if not rows.size:
                continue
            batch = source.instances.get_batch(row_instances[rows])
            for key, value in batch.items():
                if key not in parts:
                    parts[key] = np.zeros((len(row_sources),) + value.shape[1:], dtype=value.dtype)
                parts[key][rows] = value
        return {key: torch.from_numpy(value) for key, value in parts.items()}


class MixtureLoader:
    def __init__(self, sources: Sequence[_Source], *, global_batch_size: int, sequence_length: int, dp_rank: int,
                 dp_world_size: int, seed: int, fingerprint: str, num_workers: int = 0,
                 prefetch_factor: Optional[int] = None):
        T = sequence_length
        if global_batch_size % (T * dp_world_size):
            raise DataError("data_loader.global_batch_size",
                            f"{global_batch_size} tokens is not divisible by sequence length ({T}) x "
                            f"data-parallel size ({dp_world_size})")
        self.sources = list(sources)
        self.names = [s.name for s in self.sources]
        self.ratios = [s.ratio for s in self.sources]
        self.sequence_length = T
        self.global_batch_size = global_batch_size
        self.global_rows = global_batch_size // T
        self.rank_rows = self.global_rows // dp_world_size
        self.dp_rank, self.dp_world_size = dp_rank, dp_world_size
        self.seed, self.fingerprint = seed, fingerprint
        self.num_workers, self.prefetch_factor = num_workers, prefetch_factor
        self.description = ""
        self.batches_per_epoch = None  # no epochs: durations are steps or tokens
        self.batches_processed = 0
        self.counts = [0] * len(self.sources)  # rows drawn per source
        self.tokens = [0] * len(self.sources)  # data tokens (no padding) drawn per source

    # ---- planning ------------------------------------------------------------------------
    def _plan(self, counts: List[int], tokens: List[int]):
        """(row sources, row instances) of all B rows of the global batch that starts at
        `counts`, and the (counts, tokens) after it."""
        start, counts, tokens = list(counts), list(counts), list(tokens)
        row_sources = np.asarray(draw_rows(counts, self.ratios, self.global_rows), dtype=np.int64)
        row_instances = np.empty(self.global_rows, dtype=np.int64)
        for i, source in enumerate(self.sources):
            if counts[i] > source.allowed:
                raise DataError(f"dataset.sources.{source.name}", f"the run has read all {source.allowed:,} "
                                f"instances that max_repetition {source.max_repetition:g} allows; raise it or "
                                "lower the source's ratio")
            rows = np.flatnonzero(row_sources == i)
            row_instances[rows] = source.instance_of(start[i] + np.arange(rows.size))
            tokens[i] += source.instances.real_tokens(row_instances[rows])
        return (row_sources, row_instances), counts, tokens

    def global_batch_at(self, counts: List[int]) -> Dict[str, torch.Tensor]:
        """All B rows of the global batch that starts at `counts` (tests and tools)."""
        (row_sources, row_instances), _, _ = self._plan(counts, [0] * len(counts))
        return _Plans(self.sources)[(row_sources, row_instances)]

    # ---- iteration -----------------------------------------------------------------------
    def __iter__(self) -> Iterator[Dict[str, torch.Tensor]]:
        reader = _Plans(self.sources)
        ahead: List[tuple] = []  # (counts, tokens) after each planned batch not yet handed out
        mine = slice(self.dp_rank * self.rank_rows, (self.dp_rank + 1) * self.rank_rows)

        def plans():
            counts, tokens = self.counts, self.tokens
            while True:
                (row_sources, row_instances), counts, tokens = self._plan(counts, tokens)
                ahead.append((counts, tokens))
                yield row_sources[mine], row_instances[mine]

        if self.num_workers > 0:
            batches = iter(torch.utils.data.DataLoader(reader, batch_size=None, sampler=plans(),
                                                       num_workers=self.num_workers,
                                                       prefetch_factor=self.prefetch_factor))
        else:
            batches = (reader[plan] for plan in plans())
        for batch in batches:
            # Counted before the trainer sees it: a checkpoint after this step resumes after it.
            self.counts, self.tokens = ahead.pop(0)
            self.batches_processed += 1
            yield batch

    # ---- resumable state -----------------------------------------------------------------
    def state_dict(self) -> Dict[str, Any]:
        return {"version": STATE_VERSION, "fingerprint": self.fingerprint, "seed": self.seed,
                "batches_processed": self.batches_processed, "global_batch_size": self.global_batch_size,
                "sequence_length": self.sequence_length,
                "counts": dict(zip(self.names, self.counts)), "tokens": dict(zip(self.names, self.tokens))}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        if "counts" not in state:
            raise DataError("dataset.sources", "the checkpoint was taken with dataset.paths, not a mixture: "
                            "its data position cannot be restored; start a new run")
        if state.get("fingerprint") != self.fingerprint:
            raise DataError("dataset.sources", f"the mixture changed since the checkpoint (its sources' files, "
                            f"names, ratios or dataset.instances; fingerprint {state.get('fingerprint')} -> "
                            f"{self.fingerprint}): the data position cannot be restored; start a new run")
        if state.get("global_batch_size") != self.global_batch_size:
            raise DataError("data_loader.global_batch_size",
                            f"the checkpoint was taken with {state.get('global_batch_size')} tokens per "
                            f"batch, not {self.global_batch_size}: the data position cannot be restored")
        self.seed = int(state["seed"])
        for source in self.sources:
            source.seed = self.seed
        self.batches_processed = int(state["batches_processed"])
        self.counts = [int(state["counts"][name]) for name in self.names]
        self.tokens = [int(state["tokens"][name]) for name in self.names]

    def metrics(self, state: Dict[str, Any]) -> Dict[str, int]:
        """Per-source token counts of a position (the record's data/<name>/tokens)."""
        return {f"data/{name}/tokens": int(tokens) for name, tokens in state.get("tokens", {}).items()}


def mixture_fingerprint(parts: Sequence[tuple], sequence_length: int, instances: str) -> str:
    """From (name, ratio, source fingerprint) of every source, the sequence length and the
    instance kind: anything that changes which tokens a position names."""
    digest = hashlib.sha256(f"mix:fsl{sequence_length}:{instances}".encode())
    for name, ratio, fingerprint in parts:
        digest.update(f"{name}:{ratio!r}:{fingerprint};".encode())
    return digest.hexdigest()[:16]


def build_mixture_loader(cfg, sources, make_instances, dp_rank: int, dp_world_size: int) -> MixtureLoader:
    """The loader of `cfg.dataset.sources` over `sources.mixture` (engine/data/sources.py);
    `make_instances(token source)` cuts a source into instances (loader.make_instances)."""
    ds, dl = cfg.dataset, cfg.data_loader
    parts, built = [], []
    for name, spec in ds.sources.items():
        tokens = sources.mixture[name]
        built.append(_Source(name, make_instances(tokens), spec.ratio, spec.max_repetition, dl.seed))
        parts.append((name, spec.ratio, tokens.fingerprint))
    loader = MixtureLoader(built, global_batch_size=dl.global_batch_size, sequence_length=ds.sequence_length,
                           dp_rank=dp_rank, dp_world_size=dp_world_size, seed=dl.seed,
                           fingerprint=mixture_fingerprint(parts, ds.sequence_length, ds.instances),
                           num_workers=dl.num_workers, prefetch_factor=dl.prefetch_factor)
    loader.description = sources.description
    return loader
