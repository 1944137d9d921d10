"""Speed of the data pipeline on this machine: the embedded corpus build, `olmo-train prepare`
(byte-level and a local tokenizer.json) and the training loader (workers 0 and 2).

    .venv/bin/python benchmarks/data_pipeline.py [--tokens N] [--batches N]

Everything runs in a temp dir; the figures printed are wall-clock rates. The load average is
printed too, because figures from a shared machine mean little without it.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from engine.config import load_experiment  # noqa: E402
from engine.data.embedded import build_embedded_corpus, stdlib_documents  # noqa: E402
from engine.data.loader import build_train_loader  # noqa: E402


def _prepare(args) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "engine", "prepare", *map(str, args)], check=True, cwd=REPO,
                   stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=64 << 20, help="size of the token file for the loader")
    parser.add_argument("--batches", type=int, default=40, help="global batches timed per loader setting")
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        started = time.perf_counter()
        _, meta = build_embedded_corpus(str(tmp / "work"), 8 << 20)
        print(f"embedded corpus build (cold, 8 MiB cap): {time.perf_counter() - started:.2f} s, "
              f"{meta['documents']} files, {meta['tokens']:,} tokens")

        text_dir = tmp / "text"
        text_dir.mkdir()
        size = 0
        for i, (_, text) in enumerate(stdlib_documents(16 << 20)):
            (text_dir / f"{i:05d}.txt").write_bytes(text)
            size += len(text)
        inputs = sorted(text_dir.iterdir())
        seconds = _prepare([*inputs, "-o", tmp / "byte.npy"])
        print(f"prepare, byte tokenizer: {size / 2**20:.1f} MiB of text in {seconds:.2f} s "
              f"({size / 2**20 / seconds:.1f} MiB/s, process start included)")

        from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        tok.train_from_iterator((p.read_text() for p in inputs[:200]), trainer=trainers.BpeTrainer(
            vocab_size=8192, special_tokens=["<|endoftext|>"],
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False))
        tok.save(str(tmp / "tokenizer.json"))
        seconds = _prepare([*inputs, "-o", tmp / "bpe.npy", "--tokenizer", tmp / "tokenizer.json"])
        bpe_tokens = (tmp / "bpe.npy").stat().st_size // 2
        print(f"prepare, 8k BPE tokenizer.json: {size / 2**20:.1f} MiB in {seconds:.2f} s "
              f"({size / 2**20 / seconds:.1f} MiB/s, {bpe_tokens / seconds:,.0f} tokens/s)")

        rng = np.random.default_rng(0)
        rng.integers(0, 50000, size=args.tokens, dtype=np.uint16).tofile(tmp / "tokens.npy")
        for workers in (0, 2):
            cfg = load_experiment({
                "model": {"vocab_size": 50304},
                "dataset": {"kind": "numpy", "paths": [str(tmp / "tokens.npy")], "sequence_length": 2048,
                            "tokenizer": {"kind": "hf", "vocab_size": 50304, "eos_token_id": 0,
                                          "pad_token_id": 1}},
                "data_loader": {"global_batch_size": 64 * 2048, "num_workers": workers},
                "train_module": {"rank_microbatch_size": 8 * 2048, "max_sequence_length": 2048},
            })
            loader = build_train_loader(cfg, 0, 1)
            stream = iter(loader)
            next(stream)  # worker start-up and page-cache warm-up excluded
            started = time.perf_counter()
            count = 0
            for _ in range(args.batches):
                batch = next(stream)
                count += batch["input_ids"].numel()
            seconds = time.perf_counter() - started
            print(f"train loader, seq 2048 x 64 rows, num_workers={workers}: "
                  f"{count / seconds / 1e6:.1f} M tokens/s "
                  f"({args.batches / seconds:.1f} batches/s)")
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
