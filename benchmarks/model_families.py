"""Sliding-window attention kernels and one training-throughput figure per new model family.

    python benchmarks/model_families.py [--budget-s 240] [--compile] [--steps 12]

Part 1 (kernels): forward + backward of one attention call at seq 4096, bf16, B=2, 16 query /
8 key-value heads, for head_dim 128 and 256 (Gemma-3) and windows 512 / 1024 / 2048: full causal
SDPA (the cost without a window), SDPA with a (T, T) band mask, FlexAttention with a block mask
(compiled). Prints ms per call and the max |difference| of the two windowed outputs.

Part 2 (families): TrainModule steps on random tokens, one GPU, bf16 (FSDP on a 1-rank group,
as the presets): qwen3-0.6b at seq 4096, gemma3-1b at seq 4096 (window 512), and a small OLMo-3
(OLMo-2 1B's shape, window 4096) at seq 8192. tokens/s over the steps after the first 4 and MFU
with ModelConfig.num_flops_per_token (sliding layers counted at min(window, seq) keys).
Each part stops early once --budget-s is spent; every result is one JSON line.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

FAMILIES = [
    ("qwen3-0.6b", 4096, 4, []),
    ("gemma3-1b", 4096, 4, []),
    ("olmo3-7b", 8192, 2, ["model.d_model=2048", "model.n_layers=16", "model.n_heads=16", "model.n_kv_heads=16",
                           "model.mlp_hidden_size=8192"]),
]


def _time_ms(fn, iters: int = 10) -> float:
    import torch

    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(iters):
        fn()
    end.record()
    torch.cuda.synchronize()
    return start.elapsed_time(end) / iters


def kernels(deadline: float) -> None:
    import torch

    from engine.nn import sliding_window as sw

    dev, seq = torch.device("cuda"), 4096
    for hd in (128, 256):
        gen = torch.Generator(device=dev).manual_seed(0)
        q, k, v = (torch.randn(2, h, seq, hd, device=dev, dtype=torch.bfloat16, generator=gen).requires_grad_()
                   for h in (16, 8, 8))

        def run(mask):
            out = sw.attend(q, k, v, mask, None)
            out.sum().backward()
            return out

        row = {"part": "kernel", "seq": seq, "head_dim": hd, "causal_full_ms": round(_time_ms(lambda: run(None)), 3)}
        for window in (512, 1024, 2048):
            if time.monotonic() > deadline:
                print(json.dumps({"part": "kernel", "skipped": "budget"}), flush=True)
                return
            result = dict(row, window=window)
            outs = {}
            for kind in ("sdpa", "flex"):
                sw.KERNEL = kind
                try:
                    mask = sw.window_mask(seq, window, dev)
                    result[f"{kind}_ms"] = round(_time_ms(lambda: run(mask)), 3)
                    outs[kind] = run(mask).detach().float()
                except Exception as exc:  # e.g. a kernel without support for this head_dim
                    result[f"{kind}_error"] = f"{type(exc).__name__}: {str(exc)[:160]}"
            if len(outs) == 2:
                result["max_abs_diff"] = round((outs["sdpa"] - outs["flex"]).abs().max().item(), 5)
            sw.KERNEL = "auto"
            print(json.dumps(result), flush=True)


def timed_steps(tm, cfg, micro: int, seq: int, steps: int, skip: int = 4):
    """`steps` training steps on one random (micro, seq) batch made on the GPU once: (tokens/s over
    the steps after `skip`, the GPU synchronised at both ends; the last step's metrics). Peak
    memory statistics are reset first."""
    import torch

    gen = torch.Generator(device="cuda").manual_seed(0)
    batch = torch.randint(0, cfg.dataset.tokenizer.vocab_size, (micro, seq), device="cuda", generator=gen)
    torch.cuda.reset_peak_memory_stats()
    for step in range(steps):
        if step == skip:
            torch.cuda.synchronize()
            t0 = time.perf_counter()
        metrics = tm.train_batch({"input_ids": batch})
        tm.optim_step()
    torch.cuda.synchronize()
    return micro * seq * (steps - skip) / (time.perf_counter() - t0), metrics


def family(preset: str, seq: int, micro: int, extra, steps: int, compile_model: bool) -> dict:
    import torch

    from engine.config import resolve
    from engine.hardware import accelerator_for_device
    from engine.nn import sliding_window as sw
    from engine.train_module.train_module import TrainModule

    overrides = [f"--dataset.sequence_length={seq}", "--dataset.kind=synthetic",
                 f"--train_module.max_sequence_length={seq}", f"--train_module.rank_microbatch_size={micro * seq}",
                 f"--data_loader.global_batch_size={micro * seq}", "--launch.nproc_per_node=1",
                 f"--train_module.compile_model={str(compile_model).lower()}", f"--trainer.max_duration={steps} steps",
                 ] + [f"--{s}" for s in extra]
    cfg = resolve(preset=preset, overrides=overrides)
    tps, metrics = timed_steps(TrainModule(cfg, device=torch.device("cuda")), cfg, micro, seq, steps)
    loss = metrics["ce_loss"]
    flops = cfg.model.num_flops_per_token(seq)
    acc = accelerator_for_device(torch.cuda.get_device_name())
    return {"part": "family", "preset": preset, "family": cfg.model.family, "overrides": extra,
            "params": cfg.model.num_params(), "seq": seq, "micro_batch": micro,
            "window": cfg.model.sliding_window, "kernel": sw.kernel_for(torch.device("cuda")),
            "compile": compile_model, "tokens_per_s": round(tps), "model_tflops": round(flops * tps / 1e12, 1),
            "mfu": round(100 * flops * tps / acc.peak_bf16_flops, 1) if acc else None,
            "peak_mem_gib": round(torch.cuda.max_memory_allocated() / 2**30, 1), "loss_last": round(loss.item(), 3)}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--budget-s", type=float, default=240.0)
    p.add_argument("--steps", type=int, default=12)
    p.add_argument("--compile", action="store_true", help="torch.compile the blocks (slower start)")
    p.add_argument("--skip-kernels", action="store_true")
    args = p.parse_args()
    import torch

    from engine.distributed.init import init_distributed

    init_distributed()
    t_start = time.monotonic()
    print(json.dumps({"device": torch.cuda.get_device_name(), "torch": torch.__version__,
                      "date": time.strftime("%Y-%m-%d")}), flush=True)
    if not args.skip_kernels:
        kernels(t_start + args.budget_s * 0.35)
    for preset, seq, micro, extra in FAMILIES:
        if time.monotonic() - t_start > args.budget_s:
            print(json.dumps({"part": "family", "preset": preset, "skipped": "budget"}), flush=True)
            continue
        from engine.nn import sliding_window as sw

        for kernel in ("auto", "sdpa"):  # on a kernel failure, one retry with the SDPA mask
            sw.KERNEL = kernel
            try:
                print(json.dumps(family(preset, seq, micro, extra, args.steps, args.compile)), flush=True)
                break
            except Exception as exc:
                print(json.dumps({"part": "family", "preset": preset, "kernel": kernel,
                                  "error": f"{type(exc).__name__}: {str(exc)[:300]}"}), flush=True)
            finally:
                torch.cuda.empty_cache()
        sw.KERNEL = "auto"
    return 0


if __name__ == "__main__":
    sys.exit(main())
