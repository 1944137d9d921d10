"""The small manifest `olmo-train prepare` writes beside each token file: FILE.manifest.json.

    {"tokens": 123456, "documents": 321, "dtype": "uint16", "eos_token_id": 256,
     "tokenizer": "byte", "bytes": 246912}

It lets the pre-flight, `--dry-run` and the editor's estimates give a source's documents
without reading its tokens (the token count comes from the file size alone). A manifest whose
`bytes` no longer match its token file (the file was replaced) is ignored, never trusted.
Globs over a folder of token files skip manifests (token_source.expand_paths).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

from engine.atomic import write_atomic

MANIFEST_SUFFIX = ".manifest.json"


def manifest_path(token_file: Path) -> Path:
    return token_file.with_name(token_file.name + MANIFEST_SUFFIX)


def write_manifest(token_file: Path, *, tokens: int, documents: int, dtype: str, eos_token_id: int,
                   tokenizer: str) -> Path:
    record = {"tokens": tokens, "documents": documents, "dtype": dtype, "eos_token_id": eos_token_id,
              "tokenizer": tokenizer, "bytes": token_file.stat().st_size}
    path = manifest_path(token_file)
    write_atomic(path, json.dumps(record, indent=1) + "\n")
    return path


def read_manifest(token_file: Path) -> Optional[dict]:
    """The manifest of `token_file`, or None (missing, unreadable, or stale)."""
    try:
        record = json.loads(manifest_path(token_file).read_text())
        if record.get("bytes") != token_file.stat().st_size:
            return None
        return record
    except (OSError, ValueError):
        return None


def manifest_documents(files) -> Optional[int]:
    """Documents in a TokenFiles' files, when each has a current manifest; else None."""
    total = 0
    for path in files.paths:
        record = read_manifest(path)
        if record is None or not isinstance(record.get("documents"), int):
            return None
        total += record["documents"]
    return total
