"""The device mesh: data-parallel dims (replicate / shard), context-, pipeline- and tensor-parallel dims.

Layouts (outermost first; tp innermost so a TP group sits on one node's fast links, cp next to
it for its all-to-alls, pp outermost: its point-to-point sends are the cheapest traffic):
  ddp / fsdp:  ("pp", "dp", "cp", "tp")
  hsdp:        ("pp", "dp_replicate", "dp_shard", "cp", "tp")
Dims of size 1 are left out (engine/config/parallel.py has the arithmetic).
Expert parallelism (fsdp only) splits "dp" into ("dp_mod_ep", "ep"), ep innermost: the ranks of
one ep group hold the experts between them and exchange tokens; FSDP still shards the rest of the
model over the whole dp (flattened back), the experts over dp_mod_ep (torchtitan's layout).

Context-parallel ranks hold different tokens of the same sequences: the loss is normalised and
gradients are averaged over dp x cp, and FSDP shards over dp x cp (flattened, as torchtitan does).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple

import torch.distributed as dist
from torch.distributed.device_mesh import DeviceMesh, init_device_mesh

from engine.config import ExperimentConfig
from engine.config.parallel import degrees
from engine.errors import UserError


@dataclass
class ParallelMesh:
    dp_name: str  # "ddp" | "fsdp" | "hsdp" | "none"
    mesh: Optional[DeviceMesh]
    dp_mesh: Optional[DeviceMesh]  # what FSDP shards over: 1-D, or 2-D (replicate, shard) for hsdp; x cp
    tp_mesh: Optional[DeviceMesh]
    dp_group: Optional[dist.ProcessGroup]  # all ranks that hold different tokens (dp x cp)
    dp_rank: int = 0  # this rank's batch slice (cp ranks of one dp rank share it)
    dp_size: int = 1  # ranks that see different batches
    cp_mesh: Optional[DeviceMesh] = None
    pp_mesh: Optional[DeviceMesh] = None
    ep_mesh: Optional[DeviceMesh] = None  # the experts' ranks (a sub-dim of dp)
    dp_mod_ep_mesh: Optional[DeviceMesh] = None  # what FSDP shards the experts over

    @property
    def tp_size(self) -> int:
        return self.tp_mesh.size() if self.tp_mesh is not None else 1

    @property
    def cp_size(self) -> int:
        return self.cp_mesh.size() if self.cp_mesh is not None else 1

    @property
    def grad_ranks(self) -> int:
        """Ranks whose gradients the DP wrappers average (they saw different tokens): dp x cp."""
        return self.dp_size * self.cp_size


def single_process_mesh() -> ParallelMesh:
    return ParallelMesh("none", None, None, None, None)


def build_mesh(cfg: ExperimentConfig, device_type: str) -> ParallelMesh:
    """The mesh for the current process group (call init_distributed first)."""
    if not dist.is_initialized():
        return single_process_mesh()
    world = dist.get_world_size()
    tm = cfg.train_module
    d = degrees(cfg)
    tp, cp, pp = d["tp"], d["cp"], d["pp"]
    ep = tm.ep_config.degree if tm.ep_config else 1
    if world % (tp * cp * pp):
        raise UserError("train_module.tp_config.degree" if tp > 1 else
                        "train_module.cp_config.degree" if cp > 1 else "train_module.pp_config.degree",
                        f"tp x cp x pp = {tp * cp * pp} does not divide the world size {world}")
    dp = world // (tp * cp * pp)
    dp_name = tm.dp_config.name if tm.dp_config else "ddp"
    data: Tuple[Tuple[str, int], ...]
    if dp_name == "hsdp":
        shard = tm.dp_config.shard_degree or _gpus_per_node(device_type, dp)
        if dp % shard:
            raise UserError("train_module.dp_config.shard_degree",
                            f"{shard} does not divide the data-parallel size {dp}")
        data = (("dp_replicate", dp // shard), ("dp_shard", shard))
    elif ep > 1:
        data = (("dp_mod_ep", dp // ep), ("ep", ep))
    else:
        data = (("dp", dp),)
    dims = ((("pp", pp),) if pp > 1 else ()) + data + ((("cp", cp),) if cp > 1 else ()) + \
        ((("tp", tp),) if tp > 1 else ())
    mesh = init_device_mesh(device_type, tuple(n for _, n in dims), mesh_dim_names=tuple(k for k, _ in dims))
    data_dims = tuple(k for k, _ in data)
    if cp > 1 and dp_name == "hsdp":
        mesh[("dp_shard", "cp")]._flatten("dp_shard_cp")
        dp_mesh = mesh[("dp_replicate", "dp_shard_cp")]
    elif cp > 1:
        dp_mesh = mesh[("dp", "cp")]._flatten("dp_cp")
    elif ep > 1:
        dp_mesh = mesh[data_dims]._flatten("dp")
    else:
        dp_mesh = mesh[data_dims] if len(data_dims) > 1 else mesh[data_dims[0]]
    token_dims = data_dims + (("cp",) if cp > 1 else ())
    if len(token_dims) == len(dims):
        dp_group = dist.group.WORLD
    elif dp_mesh.ndim == 1:
        dp_group = dp_mesh.get_group()
    else:  # hsdp with tp, cp or pp: one flat group over every dim that holds different tokens
        dp_group = mesh[token_dims]._flatten("tokens_flat").get_group()
    coordinate = dict(zip(mesh.mesh_dim_names, mesh.get_coordinate()))
    dp_rank = 0
    for name, size in data:  # row-major over the data dims: the batch slice this rank reads
        dp_rank = dp_rank * size + coordinate[name]
    return ParallelMesh(dp_name, mesh, dp_mesh, mesh["tp"] if tp > 1 else None, dp_group, dp_rank, dp,
                        mesh["cp"] if cp > 1 else None, mesh["pp"] if pp > 1 else None,
                        mesh["ep"] if ep > 1 else None, mesh["dp_mod_ep"] if ep > 1 else None)


def _gpus_per_node(device_type: str, dp: int) -> int:
    import os

    local = int(os.environ.get("LOCAL_WORLD_SIZE", 0))
    return local if local and dp % local == 0 else dp
