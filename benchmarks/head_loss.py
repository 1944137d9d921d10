"""The training head + loss alone (output projection, cross-entropy, forward + backward) at the
shapes of the peer comparison, one implementation after the other in one process:

    python3 benchmarks/head_loss.py                       # all shapes, all implementations (GPU)
    python3 benchmarks/head_loss.py --shapes qwen3 --reps 5
    python3 benchmarks/head_loss.py --tiny                # CPU smoke run of the script's logic

  matmuls   the three bf16 matmuls alone (logits, grad of h, grad of W): the floor
  full      logits = h @ W.T held whole, compiled fp32 cross-entropy, autograd (the peer's head)
  chunked0  engine/nn/fused_loss.py before the fp32 addmm accumulation (weight grad via .float())
  chunked   engine/nn/fused_loss.py as it is (IMPL "chunked")
  liger1    liger-kernel's fused linear cross-entropy, its default chunking (chunk_mem_const 1)
  liger     the same with fused_loss.LIGER_CHUNK_MEM (IMPL "liger")

Prints one JSON line per (shape, implementation): median ms of forward + backward (CUDA events,
after warm-ups), TFLOP/s counted as 6 N d V, peak memory above the inputs, and the relative
error of the loss and of both gradients against the "full" path computed in fp32 from the same
bf16 inputs.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# name: (tokens N, d_model, vocab V) of the throughput cases (tokens = one micro-batch)
SHAPES = {
    "qwen3": (4 * 4096, 1024, 151936),
    "gemma3": (4 * 4096, 1152, 262144),
    "olmo2": (8 * 4096, 2048, 100352),
    "llama2": (32 * 1024, 1024, 50304),
}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--shapes", nargs="*", default=list(SHAPES))
    p.add_argument("--impls", nargs="*", default=["matmuls", "full", "chunked0", "chunked", "liger1", "liger"])
    p.add_argument("--reps", type=int, default=8)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--tiny", action="store_true", help="small shapes on CPU, fp32: checks the script only")
    args = p.parse_args()

    import torch

    import engine.nn.fused_loss as fused
    from engine.nn.loss import cross_entropy_sums

    import torch._dynamo

    # Each shape compiles the loss functions anew (two chunk lengths per shape): keep them all.
    for name in ("cache_size_limit", "recompile_limit"):
        if hasattr(torch._dynamo.config, name):
            setattr(torch._dynamo.config, name, 64)
    gpu = torch.cuda.is_available() and not args.tiny
    device = torch.device("cuda" if gpu else "cpu")
    dtype = torch.bfloat16 if gpu else torch.float32
    compiled_ce = torch.compile(cross_entropy_sums, fullgraph=True) if gpu else cross_entropy_sums
    chunk_fn = torch.compile(fused.chunk_objective, fullgraph=True, dynamic=False) if gpu else fused.chunk_objective
    have_liger = gpu and _importable("liger_kernel")

    def old_add(grad_w, g, h):  # the accumulation before this change, for the same-job ratio
        grad_w += (g.t() @ h).float()

    new_add = fused._add_weight_grad

    def run(impl, h, w, labels):
        if impl == "matmuls":
            with torch.no_grad():
                logits = h @ w.t()
                _ = logits @ w
                _ = logits.t() @ h
            return None
        h = h.detach().requires_grad_(True)
        w = w.detach().requires_grad_(True)
        if impl == "full":
            obj, _ = compiled_ce(h @ w.t(), labels, -100, False)
        elif impl.startswith("chunked"):
            fused._add_weight_grad = old_add if impl == "chunked0" else new_add
            obj, _, _ = fused.chunked_linear_cross_entropy(h, w, labels, -100, None, chunk_fn)
        else:
            saved = fused.LIGER_CHUNK_MEM
            fused.LIGER_CHUNK_MEM = 1 if impl == "liger1" else saved
            try:
                obj, _, _ = fused.liger_linear_cross_entropy(h, w, labels, -100, None)
            finally:
                fused.LIGER_CHUNK_MEM = saved
        (obj / labels.numel()).backward()
        return obj.detach().float(), h.grad.float(), w.grad.float()

    for shape in args.shapes:
        n, d, v = (256, 64, 1000) if args.tiny else SHAPES[shape]
        gen = torch.Generator(device=device).manual_seed(0)
        h = (torch.randn(n, d, device=device, generator=gen) * 1.0).to(dtype)
        w = (torch.randn(v, d, device=device, generator=gen) * 0.02).to(dtype)
        labels = torch.randint(0, v, (n,), device=device, generator=gen)
        labels[:: 17] = -100  # some ignored tokens, as documents' ends give
        reference = None
        for impl in args.impls:
            if impl.startswith("liger") and not have_liger:
                print(json.dumps({"shape": shape, "impl": impl, "skipped": "liger-kernel not importable or no GPU"}))
                continue
            try:
                out = run(impl, h, w, labels)  # warm-up 1 (compiles)
                for _ in range(args.warmup - 1):
                    run(impl, h, w, labels)
                if gpu:
                    torch.cuda.synchronize()
                    torch.cuda.reset_peak_memory_stats()
                    base = torch.cuda.memory_allocated()
                times = []
                for _ in range(args.reps):
                    if gpu:
                        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                        start.record()
                        run(impl, h, w, labels)
                        end.record()
                        end.synchronize()
                        times.append(start.elapsed_time(end))
                    else:
                        t0 = time.perf_counter()
                        run(impl, h, w, labels)
                        times.append(1e3 * (time.perf_counter() - t0))
            except Exception as e:  # an OOM or a missing kernel is a result, not the end of the job
                print(json.dumps({"shape": shape, "impl": impl, "error": f"{type(e).__name__}: {str(e)[:300]}"}),
                      flush=True)
                fused._add_weight_grad = new_add
                continue
            fused._add_weight_grad = new_add
            med = statistics.median(times)
            row = {"shape": shape, "impl": impl, "N": n, "d": d, "V": v, "ms": round(med, 3),
                   "ms_min": round(min(times), 3), "ms_max": round(max(times), 3),
                   "tflops": round(6 * n * d * v / med / 1e9, 1),
                   "peak_gib_above_inputs": round((torch.cuda.max_memory_allocated() - base) / 2**30, 2) if gpu else None}
            if impl == "full":
                reference = out
            if out is not None and reference is not None and impl != "full":
                row["rel_err"] = {name: float((a - b).norm() / b.norm())
                                  for name, a, b in zip(("loss", "grad_h", "grad_w"), out, reference)}
            print(json.dumps(row), flush=True)
    return 0


def _importable(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None


if __name__ == "__main__":
    sys.exit(main())
