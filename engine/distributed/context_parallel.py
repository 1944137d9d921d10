"""Context parallelism, Ulysses style (Jacobs et al. 2023, DeepSpeed-Ulysses): each of the cp
ranks holds T / cp tokens of every sequence for the whole model, except inside attention, where
one all-to-all trades the sequence shards for head shards (every rank then sees all T positions
for H / cp heads, so causal and sliding-window masks are the ordinary ones) and a second trades
them back. Two all-to-alls of q / k / v / out per layer; it runs on any backend (gloo included).

Load balancing: with `zig_zag` the sequence is cut into 2 x cp chunks and rank r holds chunks r
and 2cp - 1 - r, so each rank holds as many early as late positions. Ulysses attention is
balanced either way (every rank attends all positions for its heads); the layout is the one ring
attention needs, and it keeps the per-rank loss work even when documents are packed. Positions
are global: each rank's RoPE rows are the rows of its own positions, and the attention, which
sees the whole sequence, puts the gathered chunks back in order before the causal kernel.

    apply_context_parallel(model, cp_mesh, cfg)   # model.cp / attention.cp = the ContextParallel
    ids, labels = cp.shard(ids), cp.shard(labels) # in the train module, before the forward
"""

from __future__ import annotations

from typing import Dict, Tuple

import torch
import torch.distributed._functional_collectives as funcol
from torch.distributed.device_mesh import DeviceMesh

from engine.config.train_module import ContextParallelConfig


def shard_order(seq_len: int, degree: int, zig_zag: bool, device=None) -> torch.Tensor:
    """Global positions in the rank-major concatenation of the ranks' shards (rank r's shard is
    the r-th slice of seq_len / degree): zig-zag gives rank r chunks r and 2 x degree - 1 - r."""
    positions = torch.arange(seq_len, device=device)
    if not zig_zag:
        return positions
    chunks = positions.chunk(2 * degree)
    return torch.cat([torch.cat((chunks[r], chunks[2 * degree - 1 - r])) for r in range(degree)])


def _all_to_all(x: torch.Tensor, group) -> torch.Tensor:
    """All-to-all over dim 0 (equal splits, one per rank), differentiable (its own adjoint).

    The functional collective, which torch.compile traces: `dist.all_to_all_single` inside an
    autograd.Function trained on different numbers once compiled on CUDA (H100, 2026-12-07,
    benchmarks/cp_overhead.py at seq 2048: the largest relative loss difference to CP off was
    0.20 after 12 steps; with this one 0.0, eager and compiled)."""
    out = funcol.all_to_all_single_autograd(x.contiguous(), None, None, group)
    return funcol.wait_tensor(out) if type(out) is not torch.Tensor else out  # an AsyncCollectiveTensor


class ContextParallel:
    def __init__(self, cp_mesh: DeviceMesh, cfg: ContextParallelConfig):
        self.group = cp_mesh.get_group()
        self.degree = cp_mesh.size()
        self.rank = cp_mesh.get_local_rank()
        self.zig_zag = cfg.load_balancer == "zig_zag"
        self._orders: Dict[Tuple[int, str], Tuple[torch.Tensor, torch.Tensor]] = {}

    # ---- the sequence layout -----------------------------------------------------------------
    def _order(self, seq_len: int, device: torch.device) -> Tuple[torch.Tensor, torch.Tensor]:
        """(order, inverse): order[i] = the global position of the i-th token of the rank-major
        concatenation of every rank's shard; inverse puts that concatenation back in order."""
        key = (seq_len, str(device))
        if key not in self._orders:
            order = shard_order(seq_len, self.degree, self.zig_zag, device)
            self._orders[key] = (order, torch.argsort(order))
        return self._orders[key]

    def positions(self, seq_len: int, device: torch.device) -> torch.Tensor:
        """This rank's global positions (T / cp,) of a sequence of `seq_len` tokens."""
        local = seq_len // self.degree
        return self._order(seq_len, device)[0][self.rank * local:(self.rank + 1) * local]

    def shard(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, ...) -> (B, T / cp, ...): this rank's tokens (ids, labels)."""
        return x[:, self.positions(x.shape[1], x.device)]

    # ---- inside attention ----------------------------------------------------------------------
    def to_heads(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T/cp, H, hd) sequence shard -> (B, T, H/cp, hd) head shard, positions in order."""
        B, Tl, H, hd = x.shape
        cp = self.degree
        send = x.reshape(B, Tl, cp, H // cp, hd).permute(2, 0, 1, 3, 4)  # (cp, B, Tl, H/cp, hd): j-th to rank j
        got = _all_to_all(send, self.group)  # got[j] = rank j's tokens, my heads
        gathered = got.permute(1, 0, 2, 3, 4).reshape(B, cp * Tl, H // cp, hd)
        return gathered[:, self._order(cp * Tl, x.device)[1]]

    def to_sequence(self, y: torch.Tensor) -> torch.Tensor:
        """(B, T, H/cp, hd) head shard, positions in order -> (B, T/cp, H, hd) sequence shard."""
        B, T, Hl, hd = y.shape
        cp = self.degree
        y = y[:, self._order(T, y.device)[0]]  # back to the rank-major concatenation
        send = y.reshape(B, cp, T // cp, Hl, hd).transpose(0, 1)  # (cp, B, Tl, H/cp, hd): j-th to rank j
        got = _all_to_all(send, self.group)  # got[j] = my tokens, rank j's heads
        return got.permute(1, 2, 0, 3, 4).reshape(B, T // cp, cp * Hl, hd)


def apply_context_parallel(model, cp_mesh: DeviceMesh, cfg: ContextParallelConfig) -> ContextParallel:
    """Give the model and every attention the ContextParallel (they act on it only when set)."""
    cp = ContextParallel(cp_mesh, cfg)
    model.cp = cp
    for block in model.blocks.values():
        block.attention.cp = cp
    return cp
