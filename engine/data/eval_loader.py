"""The evaluation loader: padded held-out documents in fixed micro-batches, no shuffling.

Instances (one document or document piece each, see datasets.PaddedDocuments) are dealt in
groups of N x W (N = rank_microbatch_size // sequence_length rows, W ranks): rank r takes the
r-th N of each group. The last group is filled with all-padding rows (label_mask all False) so
every rank runs the same number of micro-batches with the same shapes. `max_batches` caps the
micro-batches per rank; iterating again starts from the beginning (same batches every time).
"""

from __future__ import annotations

from typing import Dict, Iterator, Optional

import numpy as np
import torch

from engine.config import ExperimentConfig

from .datasets import PaddedDocuments
from .sources import build_sources


class EvalLoader:
    def __init__(self, documents: PaddedDocuments, *, rows: int, dp_rank: int, dp_world_size: int,
                 max_batches: Optional[int] = None):
        self.documents, self.rows = documents, rows
        self.dp_rank, self.dp_world_size = dp_rank, dp_world_size
        group = rows * dp_world_size
        batches = -(-len(documents) // group)
        self.num_batches = batches if max_batches is None else min(batches, max_batches)

    def __len__(self) -> int:
        return self.num_batches

    def __iter__(self) -> Iterator[Dict[str, torch.Tensor]]:
        group = self.rows * self.dp_world_size
        for b in range(self.num_batches):
            first = b * group + self.dp_rank * self.rows
            indices = np.arange(first, first + self.rows)
            indices[indices >= len(self.documents)] = -1  # padding rows
            ids, mask = self.documents.get_many(indices)
            yield {"input_ids": torch.from_numpy(ids), "label_mask": torch.from_numpy(mask)}


def build_eval_loaders(cfg: ExperimentConfig, dp_rank: int = 0, dp_world_size: int = 1,
                       max_batches: Optional[int] = None) -> Dict[str, EvalLoader]:
    """Held-out set name ("" for the one unnamed set) -> its loader of micro-batches
    {"input_ids": (N, T) long, "label_mask": (N, T) bool}: dataset.eval_sets, else
    dataset.eval_paths, else the held-out tail of the training data or of each source of a
    mixture (see sources.py)."""
    sources = build_sources(cfg)
    T = cfg.dataset.sequence_length
    rows = max(cfg.train_module.rank_microbatch_size // T, 1)
    return {name: EvalLoader(PaddedDocuments(held, T, sources.eos_token_id, sources.pad_token_id), rows=rows,
                             dp_rank=dp_rank, dp_world_size=dp_world_size, max_batches=max_batches)
            for name, held in sources.held_out_sets().items()}


def build_eval_loader(cfg: ExperimentConfig, dp_rank: int = 0, dp_world_size: int = 1,
                      max_batches: Optional[int] = None) -> EvalLoader:
    """The loader of the one unnamed held-out set (dataset.eval_paths or the training data's tail)."""
    return build_eval_loaders(cfg, dp_rank, dp_world_size, max_batches)[""]
