"""Cost of a source mixture's bookkeeping and of packing, on this machine (CPU only):

    .venv/bin/python benchmarks/data_mixture.py

- `draw_rows`: choosing the source of every row of one global batch (done in the training
  process each step, engine/data/mixture.py), for 1024 / 4096 rows over 3 and 10 sources;
- `pack_best_fit`: best-fit decreasing of 200,000 document pieces (lognormal lengths, mean
  ~1,600 tokens, capped at 4096) into instances of 4096 (engine/data/datasets.py), with the fill.

The load average is printed: figures from a shared machine mean little without it.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.data.datasets import pack_best_fit  # noqa: E402
from engine.data.mixture import draw_rows  # noqa: E402


def main() -> None:
    print(f"load average {os.getloadavg()[0]:.1f}")
    for rows, sources in ((1024, 3), (1024, 10), (4096, 3)):
        counts, ratios, n = [0] * sources, [1 / sources] * sources, 20
        started = time.perf_counter()
        for _ in range(n):
            draw_rows(counts, ratios, rows)
        print(f"draw_rows: {rows} rows, {sources} sources: {(time.perf_counter() - started) / n * 1e3:.2f} ms "
              "per global batch")
    lengths = np.minimum(np.random.default_rng(0).lognormal(7, 1.2, 200_000).astype(int) + 1, 4096)
    started = time.perf_counter()
    bins = pack_best_fit(lengths, 4096)
    elapsed = time.perf_counter() - started
    instances = int(bins.max()) + 1
    print(f"pack_best_fit: {len(lengths):,} pieces, {int(lengths.sum()):,} tokens -> {instances:,} instances of "
          f"4096 in {elapsed:.2f} s, fill {lengths.sum() / (instances * 4096):.4f}")


if __name__ == "__main__":
    main()
