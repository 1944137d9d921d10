"""The cost of the Ulysses context-parallel path on one GPU: the same model and batches trained
without CP and with the CP path switched on over a 1-rank cp group, in one process.

    python benchmarks/cp_overhead.py --preset llama2-271m --seq-len 8192 --micro-batch 1 \
        --global-batch-tokens 65536 --steps 30 [--skip-steps 5] [--repeats 2] [--no-compile]

With one rank the all-to-alls move nothing between GPUs, so what is measured is what the path
adds on top of the model's compute: the shard / un-shard index gathers of ids, labels and the
RoPE rows, the zig-zag reorder of q / k / v and of the attention output, the all-to-all calls
(NCCL on 1 rank: a device copy) and what compile makes of them. The two variants alternate
(A B A B ...), each rebuilt from the same seed, so the losses must agree (printed: the largest
relative difference) and drift of the machine falls on both. Multi-GPU CP throughput (real
all-to-alls over NVLink) needs several GPUs: run benchmarks/throughput.py under torchrun with
--set 'train_module.cp_config={degree: 2}'.

Prints one JSON line: per variant tokens/s (median over the repeats), step time, peak memory,
first / last loss, and the overhead of the CP path in percent of the plain step time.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="llama2-271m")
    p.add_argument("--seq-len", type=int, default=8192)
    p.add_argument("--micro-batch", type=int, default=1, help="sequences per micro-batch")
    p.add_argument("--global-batch-tokens", type=int, default=65536)
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--skip-steps", type=int, default=5)
    p.add_argument("--repeats", type=int, default=2, help="runs of each variant, alternating")
    p.add_argument("--no-compile", action="store_true")
    p.add_argument("--set", action="append", default=[], help="extra config override a.b=v")
    p.add_argument("--json-out", default=None)
    args = p.parse_args()

    import torch
    from torch.distributed.device_mesh import init_device_mesh

    from engine.config import resolve
    from engine.config.train_module import ContextParallelConfig
    from engine.distributed.context_parallel import apply_context_parallel
    from engine.distributed.init import init_distributed, teardown_distributed
    from engine.train_module.train_module import TrainModule

    info = init_distributed()  # a 1-rank group: FSDP and the cp mesh need one
    overrides = [
        f"--dataset.sequence_length={args.seq_len}", "--dataset.kind=synthetic",
        f"--train_module.max_sequence_length={args.seq_len}",
        f"--train_module.rank_microbatch_size={args.micro_batch * args.seq_len}",
        f"--data_loader.global_batch_size={args.global_batch_tokens}",
        "--launch.nproc_per_node=1", "--launch.backend=local", f"--trainer.max_duration={args.steps} steps",
    ] + (["--train_module.compile_model=false"] if args.no_compile else []) + [f"--{s}" for s in args.set]
    cfg = resolve(preset=args.preset, overrides=overrides)
    cuda = info.device.type == "cuda"
    vocab = cfg.dataset.tokenizer.vocab_size
    gen = torch.Generator(device=info.device).manual_seed(1234)
    instances = args.global_batch_tokens // args.seq_len
    batches = [torch.randint(0, vocab, (instances, args.seq_len), device=info.device, generator=gen)
               for _ in range(2)]

    def sync():
        if cuda:
            torch.cuda.synchronize()

    def run(ulysses: bool) -> dict:
        tm = TrainModule(cfg, device=info.device)
        if ulysses:
            # The config's degree is at least 2; one rank runs the same path with nothing to exchange.
            mesh = init_device_mesh(info.device.type, (1,), mesh_dim_names=("cp",))
            apply_context_parallel(tm.model, mesh, ContextParallelConfig.model_construct(
                degree=1, attention="ulysses", load_balancer="zig_zag"))
        if cuda:
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
        losses = []
        for step in range(1, args.steps + 1):
            if step == args.skip_steps + 1:
                sync()
                t0 = time.perf_counter()
            losses.append(tm.train_batch({"input_ids": batches[step % 2]})["ce_loss"])
            tm.optim_step()
        sync()
        seconds = time.perf_counter() - t0
        window = args.steps - args.skip_steps
        out = {"tps": instances * args.seq_len * window / seconds, "step_s": seconds / window,
               "peak_mem_gib": torch.cuda.max_memory_allocated() / 2**30 if cuda else None,
               "losses": torch.stack(losses).float().tolist()}
        del tm
        if cuda:
            torch.cuda.empty_cache()
        return out

    runs = {"cp1": [], "ulysses": []}
    for _ in range(args.repeats):
        runs["cp1"].append(run(False))
        runs["ulysses"].append(run(True))

    def summary(results):
        return {"tps": round(statistics.median(r["tps"] for r in results), 1),
                "tps_all": [round(r["tps"], 1) for r in results],
                "step_s": round(statistics.median(r["step_s"] for r in results), 4),
                "peak_mem_gib": round(max(r["peak_mem_gib"] for r in results), 2) if cuda else None,
                "loss_first": round(results[0]["losses"][0], 4), "loss_last": round(results[0]["losses"][-1], 4)}

    base, cp = summary(runs["cp1"]), summary(runs["ulysses"])
    diff = max(abs(a - b) / abs(a) for a, b in zip(runs["cp1"][0]["losses"], runs["ulysses"][0]["losses"],
                                                    strict=True))
    result = {
        "benchmark": "cp_overhead", "model": args.preset, "params": cfg.model.num_params(),
        "seq_len": args.seq_len, "micro_batch": args.micro_batch, "global_batch_tokens": args.global_batch_tokens,
        "compile": cfg.train_module.compile_model, "steps": args.steps, "window": [args.skip_steps + 1, args.steps],
        "repeats": args.repeats, "cp1": base, "ulysses_1rank": cp,
        "overhead_pct": round(100 * (cp["step_s"] / base["step_s"] - 1), 2),
        "max_loss_rel_diff": diff,
        "device": torch.cuda.get_device_name() if cuda else "cpu", "torch": torch.__version__,
        "overrides": args.set,
    }
    line = json.dumps(result)
    print(line, flush=True)
    if args.json_out:
        Path(args.json_out).write_text(line + "\n")
    teardown_distributed()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
