"""Small token files and configs for the data tests (byte-tokenizer ids, EOS 256)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import List, Optional, Sequence

import numpy as np

from engine.config import ExperimentConfig, load_experiment

REPO = Path(__file__).resolve().parents[2]
EOS = 256
COUNTING_VOCAB = 8192  # config() sets this vocab so counting files are valid data


def write_documents(path: Path, documents: Sequence[Sequence[int]], dtype: str = "uint16") -> Path:
    """A token file: each document followed by EOS."""
    ids: List[int] = []
    for doc in documents:
        ids.extend(doc)
        ids.append(EOS)
    np.asarray(ids, dtype=dtype).tofile(path)
    return path


def counting_file(path: Path, num_tokens: int, dtype: str = "uint16") -> Path:
    """Ids 0, 1, 2, ... (below COUNTING_VOCAB; 256 acts as EOS): every window is unique."""
    ids = np.arange(num_tokens) % COUNTING_VOCAB
    ids.astype(dtype).tofile(path)
    return path


def config(tmp_path: Path, **sections) -> ExperimentConfig:
    """A small numpy-dataset experiment; `sections` are nested overrides, e.g. dataset={...}."""
    data = {
        "model": {"vocab_size": COUNTING_VOCAB},
        "dataset": {"kind": "numpy", "sequence_length": 8, "work_dir": str(tmp_path / "work"),
                    "tokenizer": {"kind": "hf", "name": "counting", "vocab_size": COUNTING_VOCAB}},
        "data_loader": {"global_batch_size": 32, "seed": 3},
        "train_module": {"rank_microbatch_size": 16, "max_sequence_length": 8},
    }
    for section, values in sections.items():
        if not isinstance(values, dict):  # a top-level value, e.g. extensions=[...]
            data[section] = values
            continue
        for key, value in values.items():
            if isinstance(value, dict):
                data.setdefault(section, {}).setdefault(key, {}).update(value)
            else:
                data.setdefault(section, {})[key] = value
    return load_experiment(data)


def run_engine(*args: str, env: Optional[dict] = None, timeout: float = 120) -> subprocess.CompletedProcess:
    """`python -m engine ARGS` (= `olmo-train ARGS`) in a real subprocess from the repo root.

    Our own helper rather than `from conftest import run_cli`: with several conftest.py files in
    the tree, which one that import finds depends on collection order."""
    return subprocess.run([sys.executable, "-m", "engine", *args], capture_output=True, text=True,
                          cwd=REPO, env={**os.environ, **(env or {})}, timeout=timeout)
