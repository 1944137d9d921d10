"""MoE on one GPU: OLMoE-1B-7B's MoE layer grouped GEMM vs loop, and the olmoe-1b-7b preset
(shrunk in layers to fit one card's weights + Adam state) in tokens/s and active MFU.

    python benchmarks/moe_gpu.py [--layers 4] [--seq 4096] [--micro 4] [--steps 12] [--budget-s 420]

Part 1 (layer): one MoE feed-forward of OLMoE's shape (d 2048, 64 experts of hidden 1024, top-8,
softmax router), bf16, forward + backward on `--layer-tokens` tokens, for implementation grouped
(torch._grouped_mm per projection) and loop (one matmul per expert, the reference path); ms per
call, expert TFLOP/s (6 x 3 x d x h x top_k per token), and the max |difference| of the outputs.

Part 2 (model): TrainModule steps on random tokens, bf16 FSDP on a 1-rank group (as the preset),
olmoe-1b-7b with model.n_layers = --layers, each implementation: tokens/s over the steps after
the first 4, MFU on active FLOPs (ModelConfig.num_flops_per_token counts the router, the top_k
experts and the attention), peak memory, total / active parameters. Every result is one JSON line.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from model_families import _time_ms, timed_steps  # noqa: E402  (this folder: the script's sys.path[0])

D, EXPERTS, HIDDEN, TOP_K = 2048, 64, 1024, 8  # OLMoE-1B-7B


def layer(tokens: int) -> dict:
    import torch

    from engine.config.moe import MoEConfig
    from engine.nn.moe import MoE

    dev = torch.device("cuda")
    torch.manual_seed(0)
    layers = {}
    for impl in ("grouped", "loop"):
        cfg = MoEConfig(num_experts=EXPERTS, top_k=TOP_K, hidden_size=HIDDEN, implementation=impl)
        layers[impl] = MoE(D, cfg).to(dev, torch.bfloat16)
    for p in layers["grouped"].parameters():
        torch.nn.init.normal_(p, 0, 0.02)
    layers["loop"].load_state_dict(layers["grouped"].state_dict())
    x = torch.randn(tokens, D, device=dev, dtype=torch.bfloat16, requires_grad=True)
    row = {"part": "layer", "tokens": tokens, "d_model": D, "experts": EXPERTS, "hidden": HIDDEN, "top_k": TOP_K}
    flops = 6 * 3 * D * HIDDEN * TOP_K * tokens  # the experts' matmuls, forward + backward
    outs = {}
    for impl, moe in layers.items():
        def step():
            out = moe(x)
            out.float().square().mean().backward()
            return out
        ms = _time_ms(step)
        row[f"{impl}_ms"] = round(ms, 3)
        row[f"{impl}_expert_tflops"] = round(flops / ms / 1e9, 1)
        with torch.no_grad():
            outs[impl] = moe(x).float()
    row["grouped_speedup"] = round(row["loop_ms"] / row["grouped_ms"], 2)
    row["max_abs_diff"] = round((outs["grouped"] - outs["loop"]).abs().max().item(), 5)
    return row


def model(layers: int, seq: int, micro: int, steps: int, impl: str) -> dict:
    import torch

    from engine.config import resolve
    from engine.hardware import accelerator_for_device
    from engine.train_module.train_module import TrainModule

    overrides = [f"--model.n_layers={layers}", f"--model.moe.implementation={impl}", "--dataset.kind=synthetic",
                 f"--dataset.sequence_length={seq}", f"--train_module.max_sequence_length={seq}",
                 f"--train_module.rank_microbatch_size={micro * seq}", f"--data_loader.global_batch_size={micro * seq}",
                 "--launch.nproc_per_node=1", "--train_module.compile_model=true", f"--trainer.max_duration={steps} steps"]
    cfg = resolve(preset="olmoe-1b-7b", overrides=overrides)
    tps, metrics = timed_steps(TrainModule(cfg, device=torch.device("cuda")), cfg, micro, seq, steps)
    m = cfg.model
    flops = m.num_flops_per_token(seq)
    acc = accelerator_for_device(torch.cuda.get_device_name())
    imbalance = [round(v.item(), 2) for k, v in sorted(metrics.items()) if k.startswith("moe/imbalance/")]
    return {"part": "model", "preset": "olmoe-1b-7b", "n_layers": layers, "implementation": impl, "seq": seq,
            "micro_batch": micro, "params_total": m.num_params(), "params_active": m.num_active_params(),
            "tokens_per_s": round(tps), "active_tflops": round(flops * tps / 1e12, 1),
            "mfu_active": round(100 * flops * tps / acc.peak_bf16_flops, 1) if acc else None,
            "peak_mem_gib": round(torch.cuda.max_memory_allocated() / 2**30, 1),
            "loss_last": round(metrics["ce_loss"].item(), 3), "lb_loss": round(metrics["moe/lb_loss"].item(), 3),
            "imbalance_per_layer": imbalance}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--layers", type=int, default=4, help="olmoe-1b-7b has 16; 4 fit one 80 GB card with Adam")
    p.add_argument("--seq", type=int, default=4096)
    p.add_argument("--micro", type=int, default=4, help="sequences per micro-batch")
    p.add_argument("--steps", type=int, default=12)
    p.add_argument("--layer-tokens", type=int, default=16384)
    p.add_argument("--budget-s", type=float, default=420.0)
    args = p.parse_args()
    import torch

    from engine.distributed.init import init_distributed

    init_distributed()
    start = time.monotonic()
    print(json.dumps({"device": torch.cuda.get_device_name(), "torch": torch.__version__,
                      "date": time.strftime("%Y-%m-%d")}), flush=True)
    print(json.dumps(layer(args.layer_tokens)), flush=True)
    for impl in ("grouped", "loop"):
        if time.monotonic() - start > args.budget_s:
            print(json.dumps({"part": "model", "implementation": impl, "skipped": "budget"}), flush=True)
            continue
        try:
            print(json.dumps(model(args.layers, args.seq, args.micro, args.steps, impl)), flush=True)
        except Exception as exc:  # e.g. out of memory: report and go on
            print(json.dumps({"part": "model", "implementation": impl,
                              "error": f"{type(exc).__name__}: {str(exc)[:300]}"}), flush=True)
        finally:
            torch.cuda.empty_cache()
    return 0


if __name__ == "__main__":
    sys.exit(main())
