"""FSDP2 (fully_shard): parameters, gradients and optimizer state sharded over the dp mesh.

A 1-D mesh shards over all data-parallel ranks (FSDP); a 2-D (replicate, shard) mesh shards
within groups and all-reduces across them (HSDP). Each block is its own unit so its all-gather
overlaps the previous block's compute; the root unit holds embeddings, final norm and head.
Under expert parallelism each MoE block's experts are a unit of their own over dp_mod_ep (they are
already split over ep); expert_parallel.py explains their gradient scale.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch.distributed.device_mesh import DeviceMesh
from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

from engine.nn.transformer import Transformer


def apply_fsdp(
    model: Transformer,
    dp_mesh: DeviceMesh,
    param_dtype: Optional[torch.dtype],
    reduce_dtype: torch.dtype,
    reshard_after_forward: bool = True,
    experts_mesh: Optional[DeviceMesh] = None,
) -> None:
    mp = MixedPrecisionPolicy(param_dtype=param_dtype, reduce_dtype=reduce_dtype)
    blocks = list(model.blocks.values())
    if experts_mesh is not None:
        for i, moe in model.moe_layers().items():
            fully_shard(moe.experts, mesh=experts_mesh, mp_policy=mp,
                        reshard_after_forward=reshard_after_forward and i < len(blocks) - 1)
    for i, block in enumerate(blocks):
        # The last block's backward runs right after its forward: resharding it would only
        # force an immediate re-gather.
        fully_shard(block, mesh=dp_mesh, mp_policy=mp,
                    reshard_after_forward=reshard_after_forward and i < len(blocks) - 1)
    fully_shard(model, mesh=dp_mesh, mp_policy=mp, reshard_after_forward=False)
