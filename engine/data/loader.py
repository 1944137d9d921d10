"""The training loader: deterministic, rank-sharded, resumable fixed-length batches.

Order: epoch e (1-based) visits the instances in `permutation(num_instances)` drawn from
`numpy.random.default_rng([seed, e])`, so every (seed, epoch) gives one fixed order and each
epoch a new one. Global batch k is that order's slice [k*B, (k+1)*B) (B = global batch tokens
// sequence length); rank r of W takes the r-th of its W equal parts, so ranks are disjoint and
together cover the global batch. The last partial global batch of an epoch is dropped.

Iteration: `iter(loader)` yields the rest of the current epoch, one rank batch per optimizer
step: {"input_ids": LongTensor (B // W, T)} on the CPU. When an epoch is finished the next
`iter()` starts the following epoch (reshuffled). `batches_processed` counts batches handed
out, so `state_dict()` taken after a step resumes with exactly the next batch, also with
background workers (their read-ahead is never counted) and also on another world size with the
same global batch.
"""

from __future__ import annotations

import hashlib
import sys
from typing import Any, Dict, Iterator, Optional

import numpy as np
import torch

from engine.config import ExperimentConfig
from engine.errors import DataError

from .datasets import FixedLengthInstances, make_instances
from .sources import build_sources, size_field

STATE_VERSION = 1


class _EpochBatches(torch.utils.data.Dataset):
    """Map-style view of one epoch for torch DataLoader workers: item k = this rank's batch k."""

    def __init__(self, instances: FixedLengthInstances, order: np.ndarray, global_rows: int,
                 rank_rows: int, dp_rank: int):
        self.instances, self.order = instances, order
        self.global_rows, self.rank_rows, self.dp_rank = global_rows, rank_rows, dp_rank

    def __len__(self) -> int:
        return len(self.order) // self.global_rows

    def __getitem__(self, k: int) -> Dict[str, torch.Tensor]:
        first = k * self.global_rows + self.dp_rank * self.rank_rows
        indices = self.order[first:first + self.rank_rows]
        return {key: torch.from_numpy(value) for key, value in self.instances.get_batch(indices).items()}


class TrainLoader:
    def __init__(self, instances: FixedLengthInstances, *, global_batch_size: int, dp_rank: int,
                 dp_world_size: int, seed: int, fingerprint: str, num_workers: int = 0,
                 prefetch_factor: Optional[int] = None, size_field: str = "dataset.paths"):
        T = instances.sequence_length
        if global_batch_size % (T * dp_world_size):
            raise DataError("data_loader.global_batch_size",
                            f"{global_batch_size} tokens is not divisible by sequence length ({T}) x "
                            f"data-parallel size ({dp_world_size})")
        if not 0 <= dp_rank < dp_world_size:
            raise ValueError(f"dp_rank {dp_rank} outside [0, {dp_world_size})")
        self.instances = instances
        self.global_batch_size = global_batch_size
        self.global_rows = global_batch_size // T
        self.rank_rows = self.global_rows // dp_world_size
        self.dp_rank, self.dp_world_size = dp_rank, dp_world_size
        self.seed = seed
        self.fingerprint = fingerprint
        self.num_workers, self.prefetch_factor = num_workers, prefetch_factor
        self.total_batches = len(instances) // self.global_rows  # per epoch
        if self.total_batches == 0:
            raise DataError(size_field, f"the data holds {len(instances)} sequences of {T} tokens, fewer "
                            f"than one global batch ({self.global_rows} sequences = "
                            f"{global_batch_size} tokens)")
        self.description = ""  # one line naming the data, for the logs (set by build_train_loader)
        self.epoch = 1
        self.batches_processed = 0  # within the current epoch
        self._order_cache: Optional[tuple] = None

    # ---- order ---------------------------------------------------------------------------
    def global_order(self, epoch: int) -> np.ndarray:
        """Instance indices of `epoch` in visiting order (same on every rank)."""
        if self._order_cache is None or self._order_cache[0] != (self.seed, epoch):
            order = np.random.default_rng([self.seed, epoch]).permutation(len(self.instances))
            self._order_cache = ((self.seed, epoch), order)
        return self._order_cache[1]

    def _epoch_batches(self, epoch: int) -> _EpochBatches:
        return _EpochBatches(self.instances, self.global_order(epoch), self.global_rows, self.rank_rows,
                             self.dp_rank)

    def batch_at(self, epoch: int, k: int) -> Dict[str, torch.Tensor]:
        """This rank's batch k of `epoch` (no state change)."""
        return self._epoch_batches(epoch)[k]

    def mock_batch(self) -> Dict[str, torch.Tensor]:
        """A batch of the right shape and dtype (zeros) for a dry-run step."""
        return {"input_ids": torch.zeros((self.rank_rows, self.instances.sequence_length), dtype=torch.long)}

    # ---- iteration -----------------------------------------------------------------------
    def __len__(self) -> int:
        return self.total_batches

    @property
    def batches_per_epoch(self) -> int:
        return self.total_batches

    def metrics(self, state: Dict[str, Any]) -> Dict[str, int]:
        return {}  # one source: the record's `tokens` says it all

    def __iter__(self) -> Iterator[Dict[str, torch.Tensor]]:
        if self.batches_processed >= self.total_batches:
            self.epoch += 1
            self.batches_processed = 0
        epoch, start = self.epoch, self.batches_processed
        batches = self._epoch_batches(epoch)
        if self.num_workers > 0:
            source = iter(torch.utils.data.DataLoader(
                batches, batch_size=None, sampler=range(start, self.total_batches),
                num_workers=self.num_workers, prefetch_factor=self.prefetch_factor))
        else:
            source = (batches[k] for k in range(start, self.total_batches))
        for k, batch in zip(range(start, self.total_batches), source):
            # Counted before the trainer sees it: a checkpoint after this step resumes at k + 1.
            self.batches_processed = k + 1
            yield batch

    # ---- resumable state -----------------------------------------------------------------
    def state_dict(self) -> Dict[str, Any]:
        return {"version": STATE_VERSION, "fingerprint": self.fingerprint, "seed": self.seed,
                "epoch": self.epoch, "batches_processed": self.batches_processed,
                "global_batch_size": self.global_batch_size,
                "sequence_length": self.instances.sequence_length}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        """Continue where `state` left off (call before iterating)."""
        if state.get("fingerprint") != self.fingerprint:
            raise DataError("dataset", f"the training data changed since the checkpoint (fingerprint "
                            f"{state.get('fingerprint')} -> {self.fingerprint}): the data position cannot be "
                            "restored; point dataset.paths at the original data or start a new run")
        if state.get("global_batch_size") != self.global_batch_size:
            raise DataError("data_loader.global_batch_size",
                            f"the checkpoint was taken with {state.get('global_batch_size')} tokens per "
                            f"batch, not {self.global_batch_size}: the data position cannot be restored")
        if state.get("seed") != self.seed:
            if self.dp_rank == 0:
                print(f"note: data_loader.seed {self.seed} differs from the checkpoint's "
                      f"{state.get('seed')}; continuing the checkpoint's data order", file=sys.stderr)
            self.seed = int(state["seed"])
        self.epoch = int(state["epoch"])
        self.batches_processed = int(state["batches_processed"])


def train_fingerprint(source_fingerprint: str, sequence_length: int, instances: str = "concat") -> str:
    key = f"{source_fingerprint}:fsl{sequence_length}" + ("" if instances == "concat" else f":{instances}")
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def build_train_loader(cfg: ExperimentConfig, dp_rank: int = 0, dp_world_size: int = 1):
    """The training loader for one data-parallel rank (see the module docstring): a TrainLoader,
    or a mixture's MixtureLoader (engine/data/mixture_loader.py)."""
    sources = build_sources(cfg)

    def instances_of(source):
        return make_instances(cfg, source, sources.eos_token_id, sources.pad_token_id)

    if sources.mixture:
        from .mixture_loader import build_mixture_loader

        return build_mixture_loader(cfg, sources, instances_of, dp_rank, dp_world_size)
    T = cfg.dataset.sequence_length
    loader = TrainLoader(
        instances_of(sources.train),
        global_batch_size=cfg.data_loader.global_batch_size, dp_rank=dp_rank, dp_world_size=dp_world_size,
        seed=cfg.data_loader.seed,
        fingerprint=train_fingerprint(sources.train.fingerprint, T, cfg.dataset.instances),
        num_workers=cfg.data_loader.num_workers, prefetch_factor=cfg.data_loader.prefetch_factor,
        size_field=size_field(cfg.dataset))
    loader.description = sources.description
    return loader
