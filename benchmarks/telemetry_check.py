"""Telemetry from a real GPU run: a short tiny run on CUDA with the telemetry callback sampling
every second, then its sys/* records and the monitor line they give.

    pip install 'nvidia-ml-py>=12'      # or: pip install -e '.[telemetry]'
    .venv/bin/python benchmarks/telemetry_check.py [--steps 300] [extra overrides...]

Runs `python -m engine` into a temp run dir (tiny-cpu's model on cuda, bigger batches so the
GPU has work) and prints, per logged record with telemetry: step, then every sys/* key; then the
monitor's telemetry line for the last record and the figures for docs/BENCHMARKS.md (median
utilisation, peak memory, median power, peak temperature per GPU). Exit 1 if no sys/gpu* key
came (no CUDA, no nvidia-ml-py, or NVML failed).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from collections import deque
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from olmo_tui.app.widgets.telemetry import GPU_KEY, telemetry_text  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    args, extra = parser.parse_known_args()
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp) / "telemetry"
        cmd = [sys.executable, "-m", "engine", "telemetry", "--preset", "tiny-cpu", "--run-dir", str(run_dir),
               "--trainer.no_checkpoints", "--trainer.no_evals", f"--trainer.max_duration={args.steps} steps",
               "--trainer.callbacks.telemetry.interval_s=1", "--trainer.metrics_collect_interval=10",
               "--data_loader.global_batch_size=4096", "--train_module.rank_microbatch_size=4096", *extra]
        print("$", " ".join(cmd), flush=True)
        done = subprocess.run(cmd, cwd=REPO)
        if done.returncode != 0:
            print(f"the run failed (exit {done.returncode})", file=sys.stderr)
            return 1
        records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    with_sys = [r for r in records if any(k.startswith("sys/") for k in r)]
    for record in with_sys:
        print(json.dumps({"step": record["step"], **{k: v for k, v in record.items() if k.startswith("sys/")}}))
    gpu_keys = sorted({k for r in with_sys for k in r if GPU_KEY.match(k)})
    if not gpu_keys:
        print("no sys/gpu* keys: is this a CUDA machine with nvidia-ml-py installed?", file=sys.stderr)
        return 1
    history = {}
    for record in with_sys:
        for key in record:
            found = GPU_KEY.match(key)
            if found and found.group(2) == "util_pct":
                history.setdefault(f"gpu{found.group(1)}", deque(maxlen=16)).append(record[key])
    print("monitor line:", telemetry_text(with_sys[-1], history))
    gpus = sorted({int(GPU_KEY.match(k).group(1)) for k in gpu_keys})
    for i in gpus:
        def series(name):
            return [r[f"sys/gpu{i}/{name}"] for r in with_sys if f"sys/gpu{i}/{name}" in r]
        util, mem, power, temp = series("util_pct"), series("mem_gib"), series("power_w"), series("temp_c")
        print(f"GPU{i}: util median {statistics.median(util):.0f}% | memory peak {max(mem):.1f} GiB | "
              f"power median {statistics.median(power):.0f} W | temperature peak {max(temp):.0f} C "
              f"({len(util)} samples)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
