"""Instances cut from a token source.

- `FixedLengthInstances` (training): the source read as one long array and cut into contiguous
  `sequence_length` windows; documents may straddle windows; the remainder is dropped.
- `PackedDocuments` (training, dataset.instances = packed): whole documents packed into
  instances by best-fit decreasing, so no instance holds part of a document that continues in
  another (a document longer than `sequence_length` is split into pieces first, each packed as
  a document); the rest of an instance is PAD with a label mask that is False there.
- `PaddedDocuments` (evaluation): one document per instance, padded to `sequence_length` with
  PAD and a label mask that is False on the padding. A document longer than the sequence is
  SPLIT into consecutive pieces (none is dropped; each piece is scored without the previous
  piece as context). Pieces shorter than 2 tokens are skipped (nothing to predict).
"""

from __future__ import annotations

import bisect
from typing import Dict, List, Sequence, Tuple

import numpy as np


class FixedLengthInstances:
    def __init__(self, source, sequence_length: int):
        self.source = source
        self.sequence_length = sequence_length
        self.num_instances = source.num_tokens // sequence_length

    def __len__(self) -> int:
        return self.num_instances

    def get_many(self, indices: Sequence[int]) -> np.ndarray:
        """(len(indices), T) int64 ids."""
        T = self.sequence_length
        out = np.empty((len(indices), T), dtype=np.int64)
        for row, i in enumerate(indices):
            out[row] = self.source.read(int(i) * T, (int(i) + 1) * T)
        return out

    def get_batch(self, indices: Sequence[int]) -> Dict[str, np.ndarray]:
        return {"input_ids": self.get_many(indices)}

    def real_tokens(self, indices: np.ndarray) -> int:
        """Tokens of these instances that are data, not padding (all of them here)."""
        return len(indices) * self.sequence_length


def document_spans(source, eos_id: int, chunk: int = 1 << 22) -> Tuple[np.ndarray, np.ndarray]:
    """(starts, lengths) of every document; each ends with its EOS (a trailing document may not)."""
    ends = []
    for offset in range(0, source.num_tokens, chunk):
        ids = source.read(offset, offset + chunk)
        ends.append(np.flatnonzero(ids == eos_id) + offset + 1)
    ends = np.concatenate(ends) if ends else np.empty(0, dtype=np.int64)
    if not ends.size or ends[-1] != source.num_tokens:
        ends = np.append(ends, source.num_tokens)
    starts = np.concatenate([[0], ends[:-1]])
    return starts.astype(np.int64), (ends - starts).astype(np.int64)


class PaddedDocuments:
    def __init__(self, source, sequence_length: int, eos_id: int, pad_id: int):
        self.source = source
        self.sequence_length = sequence_length
        self.pad_id = pad_id
        piece_starts, piece_lengths = _split_pieces(*document_spans(source, eos_id), sequence_length)
        keep = piece_lengths >= 2
        self.starts, self.lengths = piece_starts[keep], piece_lengths[keep]
        self.num_instances = int(self.starts.size)

    def __len__(self) -> int:
        return self.num_instances

    def get_many(self, indices: Sequence[int]) -> Tuple[np.ndarray, np.ndarray]:
        """ids (N, T) int64 padded with PAD, label_mask (N, T) bool; an index of -1 gives an
        all-padding row (used to even out the last batch across ranks)."""
        T = self.sequence_length
        ids = np.full((len(indices), T), self.pad_id, dtype=np.int64)
        mask = np.zeros((len(indices), T), dtype=bool)
        for row, i in enumerate(indices):
            if i < 0:
                continue
            start, length = int(self.starts[i]), int(self.lengths[i])
            ids[row, :length] = self.source.read(start, start + length)
            mask[row, :length] = True
        return ids, mask


def _split_pieces(starts: np.ndarray, lengths: np.ndarray, T: int) -> Tuple[np.ndarray, np.ndarray]:
    """Documents cut into pieces of at most T tokens: (piece starts, piece lengths)."""
    pieces = -(-lengths // T)  # (D,) ceil
    within = np.arange(pieces.sum()) - np.repeat(np.cumsum(pieces) - pieces, pieces)
    piece_starts = np.repeat(starts, pieces) + T * within
    piece_ends = np.minimum(piece_starts + T, np.repeat(starts + lengths, pieces))
    return piece_starts.astype(np.int64), (piece_ends - piece_starts).astype(np.int64)


def pack_best_fit(lengths: np.ndarray, capacity: int) -> np.ndarray:
    """Bin of each item (lengths <= capacity), best-fit decreasing: the longest item first, each
    into the open bin it fills most tightly, else a new bin. Bins are numbered in order of opening.

    Open bins are kept by remaining space (at most capacity + 1 distinct values, in a sorted
    list), so each placement is one bisect: O(items x log capacity)."""
    order = np.argsort(-lengths, kind="stable")
    bins = np.empty(len(lengths), dtype=np.int64)
    by_space: Dict[int, List[int]] = {}  # remaining space -> open bins with that much left
    spaces: List[int] = []  # sorted keys of by_space
    opened = 0
    for item in order.tolist():
        need = int(lengths[item])
        at = bisect.bisect_left(spaces, need)
        if at < len(spaces):
            space = spaces[at]
            stack = by_space[space]
            target = stack.pop()
            if not stack:
                del by_space[space], spaces[at]
        else:
            space, target, opened = capacity, opened, opened + 1
        bins[item] = target
        left = space - need
        if left > 0:
            if left not in by_space:
                by_space[left] = []
                bisect.insort(spaces, left)
            by_space[left].append(target)
    return bins


class PackedDocuments:
    def __init__(self, source, sequence_length: int, eos_id: int, pad_id: int):
        self.source = source
        self.sequence_length = T = sequence_length
        self.pad_id = pad_id
        starts, lengths = _split_pieces(*document_spans(source, eos_id), T)
        bins = pack_best_fit(lengths, T) if lengths.size else np.empty(0, dtype=np.int64)
        order = np.lexsort((starts, bins))  # by instance, then in file order within one
        self.piece_starts, self.piece_lengths = starts[order], lengths[order]
        self.num_instances = int(bins.max()) + 1 if bins.size else 0
        counts = np.bincount(bins, minlength=self.num_instances)
        self.offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)  # instance i: pieces [o_i, o_i+1)
        self.fill = np.bincount(bins, weights=lengths, minlength=self.num_instances).astype(np.int64)

    def __len__(self) -> int:
        return self.num_instances

    def get_batch(self, indices: Sequence[int]) -> Dict[str, np.ndarray]:
        """input_ids (N, T) int64 (PAD after the documents), label_mask (N, T) bool (False on
        PAD), doc_ids (N, T) int64 (0, 1, ... per document piece of the row; -1 on PAD)."""
        T = self.sequence_length
        ids = np.full((len(indices), T), self.pad_id, dtype=np.int64)
        doc_ids = np.full((len(indices), T), -1, dtype=np.int64)
        for row, i in enumerate(indices):
            at = 0
            for piece, k in enumerate(range(self.offsets[i], self.offsets[i + 1])):
                start, length = int(self.piece_starts[k]), int(self.piece_lengths[k])
                ids[row, at:at + length] = self.source.read(start, start + length)
                doc_ids[row, at:at + length] = piece
                at += length
        return {"input_ids": ids, "label_mask": doc_ids >= 0, "doc_ids": doc_ids}

    def real_tokens(self, indices: np.ndarray) -> int:
        return int(self.fill[indices].sum())


def make_instances(cfg, source, eos_id: int, pad_id: int):
    """A token source cut into training instances the way dataset.instances says."""
    T = cfg.dataset.sequence_length
    if cfg.dataset.instances == "packed":
        return PackedDocuments(source, T, eos_id, pad_id)
    return FixedLengthInstances(source, T)
