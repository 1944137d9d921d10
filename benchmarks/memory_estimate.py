"""Check the app's memory estimate (olmo_tui/core/config/estimates.py) against measured peak GPU memory.

For each case it trains a few steps on one GPU with synthetic data (`python -m engine`), reads
the largest `gpu/peak_gib` (torch's max allocated memory) from the run's metrics.jsonl, and
prints one JSON line: the estimate, its parts, the measured peak and the relative error.
The estimate's fixed 1 GiB overhead (CUDA context, allocator slack) is not part of torch's
allocated memory, so the error is computed on the estimate without it.

Usage (needs a CUDA GPU): .venv/bin/python benchmarks/memory_estimate.py [--steps 6] [--only NAME]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from engine.config import resolve  # noqa: E402
from olmo_tui.core.config.estimates import GIB, memory_estimate  # noqa: E402

COMMON = [
    "--dataset.kind=synthetic", "--launch.nproc_per_node=1", "--launch.accelerator=H100",
    "--trainer.metrics_collect_interval=1", "--trainer.no_checkpoints", "--trainer.no_evals",
    "--train_module.compile_model=false", "--trainer.callbacks.gpu_monitor.enabled=true",
]
CASES = {
    # name: (preset, overrides)
    "llama2-271m": ("llama2-271m", ["--data_loader.global_batch_size=32768"]),
    "llama2-271m-ac-full": ("llama2-271m", ["--data_loader.global_batch_size=32768",
                                            "--train_module.ac_config.mode=full"]),
    "olmo2-1b-mb4096": ("olmo2-1b", ["--train_module.rank_microbatch_size=4096",
                                     "--data_loader.global_batch_size=8192"]),
}


def measure(name: str, preset: str, overrides: list, steps: int) -> dict:
    args = COMMON + [f"--trainer.hard_stop={steps} steps"] + overrides
    cfg = resolve(preset, overrides=args)
    estimate = memory_estimate(cfg)
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp) / name
        proc = subprocess.run([sys.executable, "-m", "engine", name, "--preset", preset, *args,
                               "--run-dir", str(run_dir)], cwd=REPO, capture_output=True, text=True)
        if proc.returncode != 0:
            return {"case": name, "error": proc.stderr.strip().splitlines()[-1:]}
        peaks = [json.loads(line).get("gpu/peak_gib") for line in open(run_dir / "metrics.jsonl")]
    measured = max(p for p in peaks if p is not None)
    predicted = (estimate.total - estimate.overhead) / GIB
    return {
        "case": name, "preset": preset, "overrides": overrides,
        "estimate_gib": round(predicted, 2),
        "parts_gib": {k: round(v / GIB, 2) for k, v in estimate.parts().items()},
        "measured_peak_gib": round(measured, 2),
        "error_pct": round(100 * (predicted - measured) / measured, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--only", choices=sorted(CASES))
    args = parser.parse_args()
    for name, (preset, overrides) in CASES.items():
        if args.only in (None, name):
            print(json.dumps(measure(name, preset, overrides, args.steps)), flush=True)


if __name__ == "__main__":
    main()
