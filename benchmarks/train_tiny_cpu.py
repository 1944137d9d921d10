"""Throughput and wall time of `olmo-train tiny-cpu` (the embedded default) on this machine.

    .venv/bin/python benchmarks/train_tiny_cpu.py [--steps N] [extra overrides...]

Runs the real entry point in a subprocess into a temp run dir and prints: wall time (process
start to exit, imports and data prep included), tokens/s per logged interval (median and best,
warm-up steps excluded by the speed monitor), first and last logged loss, and the system load
average before and after, because figures from a shared machine mean little without it. The
process's CPU seconds (tokens per CPU-second) are the figure least disturbed by other load.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=None, help="hard stop (default: the preset's full run)")
    parser.add_argument("--threads", type=int, default=None, help="OMP_NUM_THREADS for the run (default: the engine's, 1 per CPU rank)")
    args, extra = parser.parse_known_args()
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp) / "bench"
        cmd = [sys.executable, "-m", "engine", "bench", "--preset", "tiny-cpu", "--run-dir", str(run_dir),
               "--trainer.no_checkpoints", *extra]
        if args.steps:
            cmd.append(f"--trainer.hard_stop={args.steps} steps")
        env = {**os.environ, **({"OMP_NUM_THREADS": str(args.threads)} if args.threads else {})}
        load_before = os.getloadavg()[0]
        started = time.perf_counter()
        result = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, env=env)
        wall = time.perf_counter() - started
        cpu = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu_s = cpu.ru_utime + cpu.ru_stime
        load_after = os.getloadavg()[0]
        if result.returncode != 0:
            print(result.stdout[-2000:], result.stderr[-2000:], file=sys.stderr)
            return result.returncode
        records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    tps = [r["tps"] for r in records if r.get("tps")]
    print(f"steps: {records[-1]['step']}  tokens: {records[-1]['tokens']:,}  wall: {wall:.1f} s  "
          f"CPU: {cpu_s:.1f} s ({records[-1]['tokens'] / cpu_s:,.0f} tokens per CPU-second, start-up included)")
    print(f"tokens/s per device: median {statistics.median(tps):,.0f}  best {max(tps):,.0f}  "
          f"(over {len(tps)} logged intervals)")
    print(f"loss: first logged {records[0]['loss']:.3f} -> last {records[-1]['loss']:.3f}")
    evals = [r for r in records if "eval/lm/loss" in r]
    if evals:
        print(f"held-out loss at step {evals[-1]['step']}: {evals[-1]['eval/lm/loss']:.3f} "
              f"(ppl {evals[-1]['eval/lm/ppl']:.2f})")
    print(f"load average (1 min): {load_before:.2f} before, {load_after:.2f} after, on {os.cpu_count()} cores")
    return 0


if __name__ == "__main__":
    sys.exit(main())
