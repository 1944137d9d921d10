"""Output projection + cross-entropy (+ z-loss) in token chunks, never holding all logits.

The plain path keeps the (N, V) logits for backward and then builds their (N, V) gradient: for
OLMo-2 1B at 16k tokens per micro-batch that is 3.3 GB each in bf16 plus fp32 temporaries.
Here each chunk of tokens computes its logits, its loss and, right away, the gradient of the
objective with respect to those logits (softmax * (1 + 2 z lse) - onehot), which is folded into
the gradients of the hidden states and of the head weight; the chunk's logits are then freed.
Backward only scales the stored gradients by the incoming one. The objective (ce + z_mult * z)
is known in forward, which is what makes this possible; ce and z sums are returned for metrics.

On CUDA each chunk's head-weight gradient is added to the fp32 accumulator by the matmul itself
(addmm with an fp32 output): the plain `grad_w += (g.t() @ h).float()` wrote a (V, d) bf16
product, then an fp32 copy of it, then read both back: for Qwen3-0.6B (V 151,936, d 1,024)
about 3 GB of memory traffic per chunk, close to the chunk's matmul time.

IMPL picks the implementation: "chunked" (this file), "liger" (liger-kernel's fused linear
cross-entropy: the same chunking with a Triton softmax / gradient kernel that overwrites the
chunk's logits with their gradient; the optional `liger` extra, CUDA only) or "auto": liger on
CUDA when liger-kernel is installed, else chunked. On an H100 liger's took 9-17% less time than
the chunked path at the Qwen3 / Gemma-3 / OLMo-2 / Llama shapes and held less memory
(docs/BENCHMARKS.md, "Head + loss alone").
"""

from __future__ import annotations

import functools
import importlib.util
from typing import Callable, Optional, Tuple

import torch

# Tokens per chunk are chosen so one chunk's logits stay near this many elements (fp32-sized
# temporaries of a compiled chunk are then ~1 GiB).
CHUNK_ELEMENTS = 1 << 28
IMPL = "auto"  # "auto" | "chunked" | "liger"
# liger-kernel's transient-logits budget (chunk_mem_const): its default of 1 keeps chunks near
# N x d elements, i.e. ~128 tokens per chunk at d 1,024 / V 151,936: many small matmuls and a
# (V, d) fp32 accumulation per chunk. 16 gives chunks near ours (~2k tokens).
LIGER_CHUNK_MEM = 16


def chunk_objective(logits: torch.Tensor, labels: torch.Tensor, ignore_index: int, z_mult: float):
    """logits (c, V) in the compute dtype; labels (c,). Returns (ce_sum, z_sum, grad_logits)."""
    x = logits.float()
    keep = labels != ignore_index
    lse = torch.logsumexp(x, dim=-1)  # (c,)
    safe = labels.masked_fill(~keep, 0)
    target = x.gather(-1, safe.unsqueeze(-1)).squeeze(-1)
    ce_sum = torch.where(keep, lse - target, 0.0).sum()
    z_sum = torch.where(keep, lse.square(), 0.0).sum()
    probs = torch.exp(x - lse.unsqueeze(-1)) * (1.0 + 2.0 * z_mult * lse).unsqueeze(-1)
    onehot = torch.arange(x.shape[-1], device=x.device).unsqueeze(0) == safe.unsqueeze(-1)
    grad = torch.where(keep.unsqueeze(-1), probs - onehot.float(), 0.0)
    return ce_sum, z_sum, grad.to(logits.dtype)


def _add_weight_grad(grad_w: torch.Tensor, g: torch.Tensor, h: torch.Tensor) -> None:
    """grad_w (V, d) fp32 += g.t() (V, c) @ h (c, d), the product accumulated in fp32."""
    if grad_w.is_cuda and g.dtype in (torch.bfloat16, torch.float16):
        torch.addmm(grad_w, g.t(), h, out_dtype=torch.float32, out=grad_w)  # cuBLAS: C fp32 += A @ B
    else:  # CPU has no mixed-dtype addmm; the CPU path is fp32 (or slow anyway)
        grad_w += (g.t() @ h).float()


class _ChunkedLinearCE(torch.autograd.Function):
    @staticmethod
    def forward(ctx, h, weight, labels, ignore_index, z_mult, chunk_fn):
        # h: (N, d); weight: (V, d); labels: (N,)
        compute = torch.get_autocast_dtype(h.device.type) if torch.is_autocast_enabled(h.device.type) else h.dtype
        with torch.autocast(h.device.type, enabled=False):
            hc, wc = h.to(compute), weight.to(compute)
            n, vocab = h.shape[0], weight.shape[0]
            step = max(1, CHUNK_ELEMENTS // vocab)
            grad_h = torch.empty_like(hc)
            grad_w = torch.zeros(weight.shape, dtype=torch.float32, device=weight.device)
            ce = torch.zeros((), dtype=torch.float32, device=h.device)
            z = torch.zeros((), dtype=torch.float32, device=h.device)
            for a in range(0, n, step):
                b = min(a + step, n)
                logits = hc[a:b] @ wc.t()  # (c, V)
                ce_c, z_c, g = chunk_fn(logits, labels[a:b], ignore_index, z_mult)
                del logits
                ce += ce_c
                z += z_c
                torch.mm(g, wc, out=grad_h[a:b])  # (c, d)
                _add_weight_grad(grad_w, g, hc[a:b])  # (V, d)
        ctx.save_for_backward(grad_h, grad_w)
        ctx.dtypes = (h.dtype, weight.dtype)
        return ce + z_mult * z, ce, z

    @staticmethod
    def backward(ctx, g_obj, g_ce, g_z):
        # Only the objective carries gradient; ce and z are reported, not differentiated.
        grad_h, grad_w = ctx.saved_tensors
        h_dtype, w_dtype = ctx.dtypes
        return (grad_h * g_obj).to(h_dtype), (grad_w * g_obj).to(w_dtype), None, None, None, None


def linear_cross_entropy(
    h: torch.Tensor, weight: torch.Tensor, labels: torch.Tensor, ignore_index: int, z_mult: Optional[float],
    chunk_fn: Callable = chunk_objective,
) -> Tuple[torch.Tensor, torch.Tensor, Optional[torch.Tensor]]:
    """The training head + loss by IMPL (module docstring); same contract as
    chunked_linear_cross_entropy. On CPU it is always the chunked path."""
    use_liger = h.is_cuda and (IMPL == "liger" or (IMPL == "auto" and liger_installed()))
    # The range names this work in profiles (benchmarks/throughput.py splits GPU time by it).
    with torch.profiler.record_function("head_loss"):
        if use_liger:
            return liger_linear_cross_entropy(h, weight, labels, ignore_index, z_mult)
        return chunked_linear_cross_entropy(h, weight, labels, ignore_index, z_mult, chunk_fn)


@functools.lru_cache(maxsize=1)
def liger_installed() -> bool:
    return importlib.util.find_spec("liger_kernel") is not None


def liger_linear_cross_entropy(
    h: torch.Tensor, weight: torch.Tensor, labels: torch.Tensor, ignore_index: int, z_mult: Optional[float],
) -> Tuple[torch.Tensor, torch.Tensor, Optional[torch.Tensor]]:
    """liger-kernel's fused linear cross-entropy (reduction "sum", fp32 weight-gradient accumulator)
    with our return contract. Needs the `liger` extra (liger-kernel, Triton) and a CUDA device."""
    try:
        from liger_kernel.ops.fused_linear_cross_entropy import LigerFusedLinearCrossEntropyFunction
    except ImportError as e:  # only reachable when IMPL = "liger" was asked for
        raise RuntimeError("the liger head + loss needs liger-kernel: pip install 'olmo-tui[liger]'") from e
    z = float(z_mult or 0.0)
    # (input, weight, target, bias, ce_weight, ignore_index, lse_square_scale, label_smoothing,
    #  reduction, softcap, return_z_loss, accum_dtype, token_scaling, accuracy, predicted, ce_impl,
    #  ce_mode, chunk_mem_const)
    loss, z_sum, _, _ = LigerFusedLinearCrossEntropyFunction.apply(
        h, weight, labels.contiguous(), None, None, ignore_index, z, 0.0, "sum", None, bool(z_mult),
        torch.float32, False, False, False, None, None, LIGER_CHUNK_MEM)
    if not z_mult:
        return loss, loss.detach(), None
    # liger's z-loss output is already scaled (z_mult x sum of lse^2, summed from bf16 values).
    z_scaled = z_sum.detach().float()
    return loss, loss.detach() - z_scaled, z_scaled / z


def chunked_linear_cross_entropy(
    h: torch.Tensor, weight: torch.Tensor, labels: torch.Tensor, ignore_index: int, z_mult: Optional[float],
    chunk_fn: Callable = chunk_objective,
) -> Tuple[torch.Tensor, torch.Tensor, Optional[torch.Tensor]]:
    """h (N, d), weight (V, d), labels (N,) -> (objective_sum, ce_sum, z_sum or None).

    objective_sum = ce_sum + z_mult * z_sum is what to differentiate (after dividing by the
    token count); ce_sum and z_sum carry no gradient.
    """
    obj, ce, z = _ChunkedLinearCE.apply(h, weight, labels, ignore_index, float(z_mult or 0.0), chunk_fn)
    return obj, ce.detach(), (z.detach() if z_mult else None)
