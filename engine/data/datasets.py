"""Instances cut from a token source.

- `FixedLengthInstances` (training): the source read as one long array and cut into contiguous
  `sequence_length` windows; documents may straddle windows; the remainder is dropped.
- `PaddedDocuments` (evaluation): one document per instance, padded to `sequence_length` with
  PAD and a label mask that is False on the padding. A document longer than the sequence is
  SPLIT into consecutive pieces (none is dropped; each piece is scored without the previous
  piece as context). Pieces shorter than 2 tokens are skipped (nothing to predict).
"""

from __future__ import annotations

from typing import Sequence, Tuple

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
        T = sequence_length
        starts, lengths = document_spans(source, eos_id)
        pieces = -(-lengths // T)  # (D,) pieces per document (ceil)
        # (P,) for every piece: its index within its document, then its start and end token.
        within = np.arange(pieces.sum()) - np.repeat(np.cumsum(pieces) - pieces, pieces)
        piece_starts = np.repeat(starts, pieces) + T * within
        piece_ends = np.minimum(piece_starts + T, np.repeat(starts + lengths, pieces))
        keep = piece_ends - piece_starts >= 2
        self.starts, self.lengths = piece_starts[keep], (piece_ends - piece_starts)[keep]
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
