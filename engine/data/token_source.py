"""Flat token arrays the datasets read from: token files, synthetic ids, and slices of either.

A token source is one long sequence of ids with `num_tokens`, `read(start, end)` (ids as a
numpy array, any unsigned dtype) and a `fingerprint` that changes whenever the ids could.
Sources are picklable and open their files lazily, so DataLoader workers can use them.

Token files follow OLMo-core's layout: raw, headerless uint16/uint32 arrays (whatever the
suffix), with EOS already placed between documents; element count = file size / itemsize.
"""

from __future__ import annotations

import bisect
import glob
import hashlib
import itertools
import os
import re
from pathlib import Path
from typing import Iterable, List, Optional, Sequence

import numpy as np

from engine.errors import DataError

from .manifest import MANIFEST_SUFFIX


def expand_paths(patterns: Sequence[str], field: str) -> List[Path]:
    """`~`, `${VAR}` and globs (sorted per pattern), in the order given; errors name `field`."""
    paths: List[Path] = []
    for pattern in patterns:
        expanded = os.path.expanduser(os.path.expandvars(pattern))
        unset = re.search(r"\$\{?(\w+)", expanded)
        if unset:
            raise DataError(field, f"{pattern!r}: environment variable {unset.group(1)} is not set")
        if glob.has_magic(expanded):
            matches = sorted(glob.glob(expanded, recursive=True))
            # A folder of prepared files also holds their manifests (engine/data/manifest.py).
            matches = [m for m in matches if os.path.isfile(m) and not m.endswith(MANIFEST_SUFFIX)]
            if not matches:
                raise DataError(field, f"{pattern!r} matches no files")
            paths.extend(Path(m) for m in matches)
        else:
            path = Path(expanded)
            if not path.is_file():
                raise DataError(field, f"file not found: {path}")
            paths.append(path)
    return paths


class TokenFiles:
    """Several token files read as one concatenated array (np.memmap, opened on first read)."""

    def __init__(self, paths: Sequence[Path], dtype: str, field: str = "dataset.paths",
                 content_id: Optional[str] = None):
        self.paths = [Path(p) for p in paths]
        self.content_id = content_id  # e.g. the embedded corpus's sha256: a stronger fingerprint
        self.dtype = np.dtype(dtype)
        self.field = field
        sizes = []
        for path in self.paths:
            size = path.stat().st_size
            if size % self.dtype.itemsize:
                raise DataError(field, f"{path} is {size} bytes, not a multiple of {self.dtype.itemsize} "
                                f"({self.dtype.name}): the file is corrupt or dataset.dtype is wrong")
            if size == 0:
                raise DataError(field, f"{path} is empty")
            sizes.append(size)
        self.sizes = sizes
        counts = [size // self.dtype.itemsize for size in sizes]
        self._starts = np.concatenate([[0], np.cumsum(counts)]).tolist()  # file k covers [s_k, s_k+1)
        self.num_tokens = int(self._starts[-1])
        self._maps: List[np.memmap] = []

    @property
    def fingerprint(self) -> str:
        # Names and sizes, not absolute paths: moving the data elsewhere keeps the position valid.
        digest = hashlib.sha256(self.dtype.name.encode())
        if self.content_id:
            digest.update(self.content_id.encode())
            return digest.hexdigest()[:16]
        for path, size in zip(self.paths, self.sizes):
            digest.update(f"{path.name}:{size};".encode())
        return digest.hexdigest()[:16]

    def __getstate__(self):
        return {**self.__dict__, "_maps": []}

    def file_array(self, k: int) -> np.memmap:
        """The k-th file's ids (read-only memmap)."""
        if not self._maps:
            self._maps = [np.memmap(p, dtype=self.dtype, mode="r") for p in self.paths]
        return self._maps[k]

    def read(self, start: int, end: int) -> np.ndarray:
        start, end = max(start, 0), min(end, self.num_tokens)
        if end <= start:
            return np.empty(0, dtype=self.dtype)
        pieces = []
        k = bisect.bisect_right(self._starts, start) - 1
        while start < end:
            file_end = self._starts[k + 1]
            stop = min(end, file_end)
            pieces.append(self.file_array(k)[start - self._starts[k]:stop - self._starts[k]])
            start, k = stop, k + 1
        return np.array(pieces[0]) if len(pieces) == 1 else np.concatenate(pieces)


class SyntheticTokens:
    """Uniformly random ids, generated in fixed blocks from (seed, block) so any range is cheap
    and the same on every rank and every run."""

    BLOCK = 1 << 16

    def __init__(self, num_tokens: int, vocab_size: int, seed: int):
        self.num_tokens, self.vocab_size, self.seed = num_tokens, vocab_size, seed
        self.dtype = np.dtype("uint32")

    @property
    def fingerprint(self) -> str:
        key = f"synthetic:{self.num_tokens}:{self.vocab_size}:{self.seed}"
        return hashlib.sha256(key.encode()).hexdigest()[:16]

    def _block(self, b: int) -> np.ndarray:
        rng = np.random.default_rng([self.seed, b])
        return rng.integers(0, self.vocab_size, size=self.BLOCK, dtype=np.uint32)

    def read(self, start: int, end: int) -> np.ndarray:
        start, end = max(start, 0), min(end, self.num_tokens)
        if end <= start:
            return np.empty(0, dtype=self.dtype)
        first, last = start // self.BLOCK, (end - 1) // self.BLOCK
        ids = np.concatenate([self._block(b) for b in range(first, last + 1)])
        return ids[start - first * self.BLOCK:end - first * self.BLOCK]


class ArrayTokens:
    """Token ids held in memory: what a data source made of Python code (a generator) returns."""

    def __init__(self, ids, vocab_size: Optional[int] = None):
        self.ids = np.ascontiguousarray(ids, dtype=np.uint32)
        self.num_tokens = int(self.ids.size)
        self.dtype = self.ids.dtype
        if vocab_size is not None and self.num_tokens and int(self.ids.max()) >= vocab_size:
            raise DataError("dataset.kind", f"the data source yields id {int(self.ids.max())}, beyond "
                            f"dataset.tokenizer.vocab_size {vocab_size}")

    @classmethod
    def from_iterable(cls, ids: Iterable[int], max_tokens: int, vocab_size: Optional[int] = None) -> "ArrayTokens":
        """The first `max_tokens` ids of an iterable (e.g. a generator), read once."""
        return cls(np.fromiter(itertools.islice(ids, max_tokens), dtype=np.int64), vocab_size)

    @property
    def fingerprint(self) -> str:
        return hashlib.sha256(self.ids.tobytes()).hexdigest()[:16]

    def read(self, start: int, end: int) -> np.ndarray:
        return self.ids[max(start, 0):max(min(end, self.num_tokens), 0)].copy()


class TokenSlice:
    """Tokens [start, end) of another source."""

    def __init__(self, source, start: int, end: int):
        self.source, self.start, self.end = source, start, end
        self.num_tokens = end - start
        self.dtype = source.dtype

    @property
    def fingerprint(self) -> str:
        return hashlib.sha256(f"{self.source.fingerprint}[{self.start}:{self.end}]".encode()).hexdigest()[:16]

    def read(self, start: int, end: int) -> np.ndarray:
        start, end = max(start, 0), min(end, self.num_tokens)
        return self.source.read(self.start + start, self.start + max(end, start))


def find_eos_at_or_after(source, position: int, eos_id: int, window: int = 1 << 20) -> int:
    """Index just past the first EOS at or after `position` (within `window` tokens), else position."""
    ids = source.read(position, position + window)
    hits = np.flatnonzero(ids == eos_id)
    return position + int(hits[0]) + 1 if hits.size else position
