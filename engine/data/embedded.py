"""The embedded default corpus: Python's own standard-library sources (code, comments and
docstrings), so a first run needs no download.

Built on first use: the stdlib's `.py` files in sorted path order (tests, site-packages and
the machine-specific `_sysconfigdata*` left out, so the same Python version gives the same
corpus everywhere), one document per file, UTF-8 bytes as ids (byte tokenizer), EOS after
each document, stopping before the document that would pass `embedded_max_bytes`.

Cached in the dataset work dir as a raw uint16 token file plus a JSON sidecar that is written
last and acts as the commit marker. Both are written to a private temp file and renamed, so two
processes building at once each produce identical bytes and the rename of either is complete.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import sysconfig
from pathlib import Path
from typing import Iterator, Tuple

import numpy as np

from engine.atomic import write_atomic
from engine.errors import DataError

from .tokenizer import BYTE_EOS_ID

FORMAT_VERSION = 1
_SKIP_DIRS = {"site-packages", "dist-packages", "__pycache__", "test", "tests", "idle_test"}


def stdlib_root() -> Path:
    return Path(sysconfig.get_paths()["stdlib"])


def stdlib_documents(max_bytes: int) -> Iterator[Tuple[str, bytes]]:
    """(relative path, UTF-8 text) of stdlib sources in sorted order, until max_bytes."""
    root = stdlib_root()
    used = 0
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in _SKIP_DIRS and not d.startswith("config-"))
        for name in sorted(filenames):
            if not name.endswith(".py") or name.startswith("_sysconfigdata"):
                continue
            path = Path(dirpath) / name
            data = path.read_bytes()
            try:
                data.decode("utf-8")
            except UnicodeDecodeError:  # a few files carry other encodings on purpose
                continue
            if not data.strip():
                continue
            if used + len(data) > max_bytes:
                return
            used += len(data)
            yield path.relative_to(root).as_posix(), data


def cache_dir(work_dir: str) -> Path:
    return Path(os.path.expanduser(os.path.expandvars(work_dir)))


def corpus_paths(work_dir: str, max_bytes: int) -> Tuple[Path, Path]:
    version = "{}.{}.{}".format(*sys.version_info[:3])
    stem = f"embedded-py{version}-{max_bytes}-v{FORMAT_VERSION}"
    base = cache_dir(work_dir)
    return base / f"{stem}.u16", base / f"{stem}.json"


def build_embedded_corpus(work_dir: str, max_bytes: int) -> Tuple[Path, dict]:
    """The cached corpus file and its metadata, building them if missing."""
    tokens_path, meta_path = corpus_paths(work_dir, max_bytes)
    if meta_path.is_file() and tokens_path.is_file():
        meta = json.loads(meta_path.read_text())
        if tokens_path.stat().st_size == meta["tokens"] * 2:
            return tokens_path, meta
    try:
        tokens_path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError("dataset.work_dir", f"cannot create {tokens_path.parent}: {exc.strerror}") from None

    pieces, files = [], 0
    eos = np.array([BYTE_EOS_ID], dtype=np.uint16)
    for _, text in stdlib_documents(max_bytes):
        pieces.append(np.frombuffer(text, dtype=np.uint8).astype(np.uint16))
        pieces.append(eos)
        files += 1
    if not files:
        raise DataError("dataset.embedded_max_bytes",
                        f"{max_bytes} bytes is smaller than the first stdlib file; raise it")
    tokens = np.concatenate(pieces)
    payload = tokens.tobytes()
    meta = {
        "format_version": FORMAT_VERSION,
        "python": sys.version.split()[0],
        "documents": files,
        "tokens": int(tokens.size),
        "sha256": hashlib.sha256(payload).hexdigest(),
        "source": "Python standard library .py files, sorted by path",
    }
    try:
        write_atomic(tokens_path, payload)
        write_atomic(meta_path, json.dumps(meta, indent=1), commit=True)  # commit marker, written last
    except OSError as exc:
        raise DataError("dataset.work_dir", f"cannot write {tokens_path.parent}: {exc.strerror}") from None
    return tokens_path, meta
