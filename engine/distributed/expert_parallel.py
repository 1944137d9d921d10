"""Expert parallelism: each MoE block's experts sharded over the ep mesh, tokens moved to their
experts' ranks and back by all-to-all (any backend with all_to_all_single: NCCL, gloo).

With ep ranks and E experts each rank holds L = E / ep consecutive experts (DTensor Shard(0) of
the stacked (E, ...) weights, so checkpoints stay in the global layout and reshard freely).
The MoE module sorts its (token, expert) pairs by global expert; this file's exchange then

  1. tells every rank how many pairs it will get for each of its experts (all-to-all of counts),
  2. sends each rank its experts' pairs (the sorted order is already grouped by destination rank),
  3. reorders what arrived, (source rank, local expert) -> (local expert, source rank), so each
     local expert's rows are contiguous for the grouped GEMM,
  4. runs the local experts, undoes 3 and sends the outputs back (the reverse all-to-all).

Both all-to-alls are autograd functions whose backward is the opposite exchange, so an expert's
gradient sums the contributions of every rank's tokens. FSDP then averages the experts'
gradients over dp_mod_ep only (fsdp.py); the rest of the model is averaged over all dp = dp_mod_ep
x ep ranks, so the experts' gradients are scaled by 1 / ep on the way (Experts.grad_scale) to get
the same global-batch gradient. (FSDP's set_gradient_divide_factor would do it in the reduce, but
its PREMUL_SUM reduction does not exist on gloo.)
"""

from __future__ import annotations

from functools import partial
from typing import List

import torch
import torch.distributed as dist
from torch import nn
from torch.distributed.device_mesh import DeviceMesh
from torch.distributed.tensor import Shard, distribute_tensor

from engine.nn.moe import Experts
from engine.nn.transformer import Transformer


class _AllToAll(torch.autograd.Function):
    """Rows of x split by `send` go to each rank; `recv` rows arrive from each. Backward: reverse."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, send: List[int], recv: List[int], group) -> torch.Tensor:
        ctx.send, ctx.recv, ctx.group = send, recv, group
        out = x.new_empty((sum(recv),) + tuple(x.shape[1:]))
        dist.all_to_all_single(out, x.contiguous(), recv, send, group=group)
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        out = grad.new_empty((sum(ctx.send),) + tuple(grad.shape[1:]))
        dist.all_to_all_single(out, grad.contiguous(), ctx.send, ctx.recv, group=ctx.group)
        return out, None, None, None


def _segment_gather_index(lengths: torch.Tensor, order: torch.Tensor) -> torch.Tensor:
    """Row index that lays out the segments of a buffer (consecutive, `lengths` rows each) in
    `order` of segment ids."""
    starts = torch.cumsum(lengths, 0) - lengths  # each segment's first row, in buffer order
    lens = lengths[order]
    out_starts = torch.cumsum(lens, 0) - lens
    total = int(lens.sum())
    rows = torch.arange(total, device=lengths.device)
    return torch.repeat_interleave(starts[order] - out_starts, lens, output_size=total) + rows


def _exchange(experts: Experts, group, ep: int, tokens: torch.Tensor, counts: torch.Tensor,
              count_list: list) -> torch.Tensor:
    """tokens (M, d) sorted by global expert, counts (E,) -> the experts' outputs, same order."""
    local = counts.numel() // ep
    received = torch.empty_like(counts)
    dist.all_to_all_single(received, counts, group=group)  # (ep * L): pairs from source s for my expert l
    received_list = received.tolist()
    send = [sum(count_list[r * local:(r + 1) * local]) for r in range(ep)]
    recv = [sum(received_list[s * local:(s + 1) * local]) for s in range(ep)]
    x = _AllToAll.apply(tokens, send, recv, group)  # (R, d) in (source rank, local expert) order
    # (source, expert) segments -> (expert, source): segment s * L + l goes to position l * ep + s
    order = torch.arange(ep * local, device=counts.device).view(ep, local).t().reshape(-1)
    index = _segment_gather_index(received, order)
    per_expert = received.view(ep, local).sum(0)
    y = experts(x[index], per_expert, per_expert.tolist())
    back = torch.empty_like(y).index_copy(0, index, y)  # undo the reorder
    return _AllToAll.apply(back, recv, send, group)


def apply_expert_parallel(model: Transformer, ep_mesh: DeviceMesh) -> None:
    """Shard every MoE block's experts over `ep_mesh` (on the meta model, before FSDP) and route
    the blocks' tokens through the all-to-all exchange."""
    group, ep = ep_mesh.get_group(), ep_mesh.size()
    for moe in model.moe_layers().values():
        experts = moe.experts
        for name in ("w1", "w3", "w2"):
            weight = getattr(experts, name)
            setattr(experts, name, nn.Parameter(distribute_tensor(weight, ep_mesh, [Shard(0)])))
        experts.grad_scale = 1.0 / ep
        moe.run_experts = partial(_exchange, experts, group, ep)


@torch.no_grad()
def clip_grad_norm_(params, max_norm: float) -> torch.Tensor:
    """clip_grad_norm_ over parameters living on different meshes (the experts' (dp_mod_ep, ep)
    and the rest's dp: DTensor ops refuse to mix them): one norm per mesh, combined."""
    groups = {}
    for p in params:
        if p.grad is not None:
            groups.setdefault(getattr(p.grad, "device_mesh", None), []).append(p.grad)
    squares = []
    for grads in groups.values():
        norm = torch.nn.utils.get_total_norm(grads, foreach=True)
        squares.append((norm.full_tensor() if hasattr(norm, "full_tensor") else norm) ** 2)
    total = torch.stack(squares).sum().sqrt()
    coefficient = (max_norm / (total + 1e-6)).clamp(max=1.0)
    for grads in groups.values():
        torch._foreach_mul_(grads, float(coefficient))  # a plain number: the DTensors' meshes differ
    return total
