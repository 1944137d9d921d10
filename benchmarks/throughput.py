"""Training throughput of a preset on synthetic tokens with the real TrainModule.

    python benchmarks/throughput.py --preset llama2-271m --seq-len 1024 --micro-batch 16 \
        --global-batch-tokens 262144 --steps 40 [--skip-steps 5] [--sdpa cudnn] [--set a.b=v ...]
    torchrun --nproc-per-node 2 benchmarks/throughput.py --preset olmo2-1b ...   (FSDP over 2 GPUs)

Prints one JSON line: model, params, seq_len, micro_batch, tokens/s/device over steps
skip+1..N (the GPU is synchronised only at the window's two ends), MFU with our FLOP formula
(ModelConfig.num_flops_per_token: attention not discounted for causality) and with the causal
count OLMo-core 3.0 uses, peak GPU memory (allocated and reserved) over the training steps,
and the first/last losses (random tokens: the loss should sit near ln(vocab)), and the time to
the first step (compilation included) from the process's start and from the model's build.
Batches are random ids made on the device once, so data loading costs nothing here.
With --profile-steps, the profiled steps' GPU time is also split into head + loss, attention,
other matmuls and the rest (elementwise, norms, optimizer, copies): "profile_split_ms".
"""

from __future__ import annotations

import time

STARTED = time.perf_counter()  # before torch's import: the first-step time counts the whole process

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="llama2-271m")
    p.add_argument("--seq-len", type=int, default=1024)
    p.add_argument("--micro-batch", type=int, default=16, help="sequences per micro-batch per rank")
    p.add_argument("--global-batch-tokens", type=int, default=262144, help="tokens per step, all ranks")
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--skip-steps", type=int, default=5)
    p.add_argument("--sdpa", choices=["auto", "cudnn", "flash"], default="auto")
    p.add_argument("--head-loss", choices=["auto", "chunked", "liger"], default="auto",
                   help="the training head + loss implementation (engine/nn/fused_loss.py IMPL)")
    p.add_argument("--no-compile", action="store_true")
    p.add_argument("--set", action="append", default=[], help="extra config override a.b=v")
    p.add_argument("--inductor", action="append", default=[],
                   help="torch._inductor.config option NAME=VALUE (Python literal), e.g. coordinate_descent_tuning=True")
    p.add_argument("--profile-steps", type=int, default=0,
                   help="after the timed window, profile this many more steps and print the top CUDA kernels")
    p.add_argument("--json-out", default=None)
    args = p.parse_args()

    import torch

    from engine.config import resolve
    from engine.distributed.init import init_distributed, teardown_distributed
    from engine.hardware import accelerator_for_device
    import engine.nn.fused_loss as fused_loss
    from engine.nn.attention import set_sdpa_backend
    from engine.train_module.train_module import TrainModule

    import ast

    import torch._inductor.config as inductor_config

    for option in args.inductor:
        name, _, value = option.partition("=")
        setattr(inductor_config, name, ast.literal_eval(value))
    fused_loss.IMPL = args.head_loss
    info = init_distributed()
    world = info.world_size
    overrides = [
        f"--dataset.sequence_length={args.seq_len}", "--dataset.kind=synthetic",
        f"--train_module.max_sequence_length={args.seq_len}",
        f"--train_module.rank_microbatch_size={args.micro_batch * args.seq_len}",
        f"--data_loader.global_batch_size={args.global_batch_tokens}",
        f"--launch.nproc_per_node={world}", "--launch.backend=local",
        f"--trainer.max_duration={args.steps} steps",
    ] + (["--train_module.compile_model=false"] if args.no_compile else []) + [f"--{s}" for s in args.set]
    cfg = resolve(preset=args.preset, overrides=overrides)
    if info.device.type == "cuda":
        set_sdpa_backend(args.sdpa)
    t_build = time.perf_counter()
    tm = TrainModule(cfg, device=info.device)
    build_s = time.perf_counter() - t_build

    seq, dp = args.seq_len, tm.dp_world_size
    rank_instances = args.global_batch_tokens // dp // seq
    gen = torch.Generator(device=info.device).manual_seed(1234 + tm.dp_rank)
    vocab = cfg.dataset.tokenizer.vocab_size
    batches = [torch.randint(0, vocab, (rank_instances, seq), device=info.device, generator=gen) for _ in range(2)]

    def sync():
        if info.device.type == "cuda":
            torch.cuda.synchronize()

    if info.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    losses, t_start = [], time.perf_counter()
    for step in range(1, args.steps + 1):
        if step == args.skip_steps + 1:
            sync()
            t0 = time.perf_counter()
        losses.append(tm.train_batch({"input_ids": batches[step % 2]})["ce_loss"])
        tm.optim_step()
        if step == 1:
            sync()
            first_step = time.perf_counter()
    sync()
    t1 = time.perf_counter()
    peak_alloc = torch.cuda.max_memory_allocated() if info.device.type == "cuda" else None
    peak_reserved = torch.cuda.max_memory_reserved() if info.device.type == "cuda" else None
    if args.profile_steps and info.device.type == "cuda":
        from torch.profiler import ProfilerActivity, profile

        with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
            for step in range(args.profile_steps):
                tm.train_batch({"input_ids": batches[step % 2]})
                tm.optim_step()
            sync()
        if info.is_main:
            print(prof.key_averages().table(sort_by="cuda_time_total", row_limit=25, max_name_column_width=70))
        profile_split = {k: round(v / 1e3 / args.profile_steps, 1) for k, v in split_kernel_time(prof).items()}
    else:
        profile_split = None
    window_steps = args.steps - args.skip_steps
    tps = rank_instances * seq * window_steps / (t1 - t0)
    flops_tok = tm.model.num_flops_per_token(seq)
    mcfg = cfg.model
    causal_flops_tok = 6 * mcfg.num_matmul_params() + 6 * mcfg.n_layers * mcfg.d_model * seq
    acc = accelerator_for_device(torch.cuda.get_device_name()) if info.device.type == "cuda" else None
    peak = acc.peak_bf16_flops if acc else None
    result = {
        "engine": "olmo-tui", "model": args.preset, "params": tm.model.num_params(), "seq_len": seq,
        "micro_batch": args.micro_batch, "global_batch_tokens": args.global_batch_tokens,
        "world_size": world, "dp": cfg.train_module.dp_config.name if cfg.train_module.dp_config else "none",
        "compile": cfg.train_module.compile_model, "sdpa": args.sdpa, "steps": args.steps,
        "window": [args.skip_steps + 1, args.steps],
        "tps_per_device": round(tps, 1),
        "mfu": round(100 * flops_tok * tps / peak, 2) if peak else None,
        "mfu_causal": round(100 * causal_flops_tok * tps / peak, 2) if peak else None,
        "model_tflops": round(flops_tok * tps / 1e12, 1),
        "step_s": round((t1 - t0) / window_steps, 4),
        "peak_mem_gib": round(peak_alloc / 2**30, 2) if peak_alloc is not None else None,
        "peak_reserved_gib": round(peak_reserved / 2**30, 2) if peak_reserved is not None else None,
        "build_s": round(build_s, 1), "total_s": round(t1 - t_start, 1),
        "first_step_s": round(first_step - t_start, 1),  # step 1 alone: compilation included
        "process_to_first_step_s": round(first_step - STARTED, 1),
        "head_loss": fused_loss.IMPL, "profile_split_ms": profile_split,
        "loss_first": round(losses[0].item(), 4), "loss_last": round(losses[-1].item(), 4),
        "losses": [round(x, 4) for x in torch.stack(losses).float().tolist()],
        "inductor": args.inductor,
        "device": torch.cuda.get_device_name() if info.device.type == "cuda" else "cpu",
        "torch": torch.__version__, "overrides": args.set,
    }
    if info.is_main:
        line = json.dumps(result)
        print(line, flush=True)
        if args.json_out:
            Path(args.json_out).write_text(line + "\n")
    teardown_distributed()
    return 0


# Kernel-name families (lower case) for the profile split; attention is tested first (some fused
# attention kernels are CUTLASS ones).
_ATTENTION = ("flash", "fmha", "cudnn", "sdpa", "attention", "flex", "triton_tem")
_MATMUL = ("gemm", "nvjet", "cutlass", "xmma", "cublas", "matmul", "splitk")


def split_kernel_time(prof) -> dict:
    """GPU microseconds by kind: kernels launched under record_function("head_loss")
    (engine/nn/fused_loss.py), then attention, other matmuls and the rest, by kernel name."""
    from torch.autograd import DeviceType

    out = {"head_loss": 0.0, "attention": 0.0, "matmul": 0.0, "other": 0.0}
    for evt in prof.events():
        if evt.device_type != DeviceType.CPU or not evt.kernels:
            continue
        parent, in_head = evt, False
        while parent is not None and not in_head:
            in_head = parent.name == "head_loss"
            parent = parent.cpu_parent
        for kernel in evt.kernels:
            name = kernel.name.lower()
            kind = ("head_loss" if in_head else "attention" if any(k in name for k in _ATTENTION)
                    else "matmul" if any(k in name for k in _MATMUL) else "other")
            out[kind] += kernel.duration
    out["total"] = sum(out.values())
    return out


if __name__ == "__main__":
    sys.exit(main())
