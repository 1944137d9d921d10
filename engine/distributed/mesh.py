"""The device mesh: data-parallel dims (replicate / shard) and a tensor-parallel dim.

Layouts (outermost first; tp innermost so a TP group sits on one node's fast links):
  ddp / fsdp:  ("dp", "tp")                     tp only when tp_config is set
  hsdp:        ("dp_replicate", "dp_shard", "tp")
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple

import torch.distributed as dist
from torch.distributed.device_mesh import DeviceMesh, init_device_mesh

from engine.config import ExperimentConfig
from engine.errors import UserError


@dataclass
class ParallelMesh:
    dp_name: str  # "ddp" | "fsdp" | "hsdp" | "none"
    mesh: Optional[DeviceMesh]
    dp_mesh: Optional[DeviceMesh]  # 1-D, or 2-D (replicate, shard) for hsdp
    tp_mesh: Optional[DeviceMesh]
    dp_group: Optional[dist.ProcessGroup]  # all ranks that see different data
    dp_rank: int = 0
    dp_size: int = 1

    @property
    def tp_size(self) -> int:
        return self.tp_mesh.size() if self.tp_mesh is not None else 1


def single_process_mesh() -> ParallelMesh:
    return ParallelMesh("none", None, None, None, None)


def build_mesh(cfg: ExperimentConfig, device_type: str) -> ParallelMesh:
    """The mesh for the current process group (call init_distributed first)."""
    if not dist.is_initialized():
        return single_process_mesh()
    world = dist.get_world_size()
    tm = cfg.train_module
    tp = tm.tp_config.degree if tm.tp_config else 1
    if world % tp:
        raise UserError("train_module.tp_config.degree", f"{tp} does not divide the world size {world}")
    dp = world // tp
    dp_name = tm.dp_config.name if tm.dp_config else "ddp"
    dims: Tuple[Tuple[str, int], ...]
    if dp_name == "hsdp":
        shard = tm.dp_config.shard_degree or _gpus_per_node(device_type, dp)
        if dp % shard:
            raise UserError("train_module.dp_config.shard_degree",
                            f"{shard} does not divide the data-parallel size {dp}")
        dims = (("dp_replicate", dp // shard), ("dp_shard", shard))
    else:
        dims = (("dp", dp),)
    if tp > 1:
        dims += (("tp", tp),)
    mesh = init_device_mesh(device_type, tuple(n for _, n in dims), mesh_dim_names=tuple(k for k, _ in dims))
    dp_dims = tuple(k for k, _ in dims if k != "tp")
    dp_mesh = mesh[dp_dims] if len(dp_dims) > 1 else mesh[dp_dims[0]]
    if tp == 1:
        dp_group = dist.group.WORLD
    elif len(dp_dims) == 1:
        dp_group = dp_mesh.get_group()
    else:  # hsdp + tp: one flat group over both data-parallel dims
        dp_group = dp_mesh._flatten("dp_flat").get_group()
    return ParallelMesh(dp_name, mesh, dp_mesh, mesh["tp"] if tp > 1 else None, dp_group,
                        dist.get_rank(dp_group), dp)


def _gpus_per_node(device_type: str, dp: int) -> int:
    import os

    local = int(os.environ.get("LOCAL_WORLD_SIZE", 0))
    return local if local and dp % local == 0 else dp
