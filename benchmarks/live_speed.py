"""The speed monitor's live tokens/s against a synced benchmark window on the same run, and a
profiler check that the CPU runs ahead of the GPU.

    python3 benchmarks/live_speed.py --preset olmo2-1b --seq-len 4096 --micro-batch 4 \
        --global-batch-tokens 131072 --steps 25 --window 5 20 [--set a.b=v ...] [--json-out f]

Runs the real engine path (build_trainer: the TrainLoader on synthetic ids, the device
prefetcher, every default callback, metrics.jsonl) with checkpoints and evals off, and adds
one callback that synchronises the GPU and reads the clock after steps A and B. The window's
tokens/s is compared with the speed monitor's own figures for steps A+1..B (its logged
intervals, weighted by time), which must lie within 2%. With --profile, the profiler callback
records the two steps after B and `cpu_lead` reads the trace: for each kernel, how long before
it started the CPU had launched it, against the GPU time of one micro-batch.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def cpu_lead(trace_path: Path, micro_batches: int, steps: int) -> dict:
    """Launch-to-start lead of every kernel in a Chrome trace, in units of one micro-batch's GPU time."""
    events = json.loads(trace_path.read_text())["traceEvents"]
    launches, kernels = {}, []
    for e in events:
        cat, args = e.get("cat", ""), e.get("args", {})
        if cat == "cuda_runtime" and "Launch" in e.get("name", "") and "correlation" in args:
            launches[args["correlation"]] = e["ts"]
        elif cat == "kernel" and "correlation" in args:
            kernels.append((e["ts"], e.get("dur", 0), args["correlation"]))
    leads = sorted(ts - launches[c] for ts, _, c in kernels if c in launches)
    if not kernels or not leads:
        return {"error": "no kernels with launches in the trace"}
    gpu_span = max(ts + d for ts, d, _ in kernels) - min(ts for ts, _, _ in kernels)
    micro_us = gpu_span / (steps * micro_batches)
    return {"kernels": len(leads), "micro_batch_gpu_ms": round(micro_us / 1e3, 2),
            "lead_ms_p10": round(leads[len(leads) // 10] / 1e3, 2),
            "lead_ms_median": round(statistics.median(leads) / 1e3, 2),
            "lead_micro_batches_p10": round(leads[len(leads) // 10] / micro_us, 2),
            "lead_micro_batches_median": round(statistics.median(leads) / micro_us, 2)}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="llama2-271m")
    p.add_argument("--seq-len", type=int, default=1024)
    p.add_argument("--micro-batch", type=int, default=16)
    p.add_argument("--global-batch-tokens", type=int, default=262144)
    p.add_argument("--steps", type=int, default=25)
    p.add_argument("--window", type=int, nargs=2, default=(5, 20), metavar=("A", "B"))
    p.add_argument("--log-interval", type=int, default=5)
    p.add_argument("--profile", action="store_true")
    p.add_argument("--set", action="append", default=[])
    p.add_argument("--json-out", default=None)
    args = p.parse_args()
    a, b = args.window
    if a % args.log_interval or b % args.log_interval or b + (3 if args.profile else 0) > args.steps:
        p.error("window ends must be logging steps (multiples of --log-interval) inside --steps")

    import torch

    from engine.config import resolve
    from engine.run import RunPaths
    from engine.train.build import build_trainer
    from engine.train.callback import Callback

    run_dir = Path(tempfile.mkdtemp(prefix="live_speed_"))
    overrides = [
        "--dataset.kind=synthetic", f"--dataset.synthetic_tokens={(args.steps + 4) * args.global_batch_tokens}",
        f"--dataset.sequence_length={args.seq_len}", f"--train_module.max_sequence_length={args.seq_len}",
        f"--train_module.rank_microbatch_size={args.micro_batch * args.seq_len}",
        f"--data_loader.global_batch_size={args.global_batch_tokens}", "--launch.backend=local",
        f"--trainer.max_duration={args.steps} steps", f"--trainer.metrics_collect_interval={args.log_interval}",
        "--trainer.no_checkpoints=true", "--trainer.no_evals=true", "--train_module.z_loss_multiplier=null",
    ]
    if args.profile:
        overrides += ["--trainer.callbacks.profiler.enabled=true", f"--trainer.callbacks.profiler.skip_first={b}",
                      "--trainer.callbacks.profiler.wait=0", "--trainer.callbacks.profiler.warmup=1",
                      "--trainer.callbacks.profiler.active=2"]
    cfg = resolve(preset=args.preset, overrides=overrides + [f"--{s}" for s in args.set])
    env = build_trainer(cfg, RunPaths(run_dir, run_dir / "checkpoints"))
    env.restore()
    trainer = env.trainer
    clock = {}

    class WindowClock(Callback):
        name = "window_clock"
        priority = -100  # after every other callback, the speed monitor included

        def post_step(self) -> None:
            if self.trainer.global_step in (a, b):
                if self.trainer.device.type == "cuda":
                    torch.cuda.synchronize()
                clock[self.trainer.global_step] = time.perf_counter()

    trainer.add_callback(WindowClock())
    try:
        trainer.fit()
    finally:
        env.teardown()
    if not env.is_rank0:
        return 0
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    tokens_per_step = args.global_batch_tokens // trainer.world_size
    window_tps = tokens_per_step * (b - a) / (clock[b] - clock[a])
    inside = [r for r in records if a < r["step"] <= b and r.get("tps")]
    seconds = sum(tokens_per_step * args.log_interval / r["tps"] for r in inside)
    live_tps = tokens_per_step * args.log_interval * len(inside) / seconds
    result = {"preset": args.preset, "seq_len": args.seq_len, "micro_batch": args.micro_batch,
              "global_batch_tokens": args.global_batch_tokens, "window": [a + 1, b],
              "window_tps": round(window_tps, 1), "live_tps": round(live_tps, 1),
              "live_over_window": round(live_tps / window_tps, 4),
              "live_intervals": [[r["step"], round(r["tps"], 1)] for r in inside],
              "device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
              "overrides": args.set}
    trace = run_dir / "profiler" / "rank0.trace.json"
    if args.profile and trace.is_file():
        micro = args.global_batch_tokens // trainer.world_size // (args.micro_batch * args.seq_len)
        result["cpu_lead"] = cpu_lead(trace, micro, 2)
    line = json.dumps(result)
    print(line, flush=True)
    if args.json_out:
        Path(args.json_out).write_text(line + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
