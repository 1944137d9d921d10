"""parallelize(): turn a meta-device Transformer into a ready, initialised training model.

The order is fixed, each step needing the one before:
  0. float8 (optional)     swaps the blocks' Linear layers for torchao Float8Linear on the meta
                           model, so compile and FSDP see the swapped modules (float8.py).
  1. tensor parallelism    (and context, expert parallelism) DTensor-shards the Linear weights over the tp mesh (must come first:
                           FSDP then shards those DTensors again over the dp mesh, giving 2-D).
  1b. context parallelism  hands the attention layers the cp group (Ulysses all-to-alls around
                           the attention kernel); no parameter changes, so it composes with TP
                           before it and FSDP (over dp x cp) after it.
  2. activation ckpt       wraps block / module forwards; must precede compile so the compiled
                           graph contains the recomputation.
  3. torch.compile         per block (and the loss), on the TP'd, checkpointed blocks.
  4. data parallelism      FSDP2 fully_shard per block + root (fsdp: 1-D mesh, hsdp: 2-D mesh)
                           with a MixedPrecisionPolicy; or DDP (composable replicate).
  5. weight init           materialise from meta on the device and fill from the seed. FSDP
                           shards meta tensors, so init comes after it; DDP broadcasts real
                           weights when it attaches, so for DDP init comes before step 4.
"""

from __future__ import annotations

from typing import Optional

import torch

from engine.config import ExperimentConfig
from engine.nn.transformer import Transformer, materialize

from .activation_checkpointing import apply_activation_checkpointing
from .compile import apply_compile
from .context_parallel import apply_context_parallel
from .ddp import apply_ddp
from .expert_parallel import apply_expert_parallel
from .float8 import apply_float8
from .fsdp import apply_fsdp
from .mesh import ParallelMesh
from .tensor_parallel import apply_tensor_parallel

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def torch_dtype(dtype) -> Optional[torch.dtype]:
    return None if dtype is None else DTYPES[getattr(dtype, "value", dtype)]


def parallelize(model: Transformer, cfg: ExperimentConfig, mesh: ParallelMesh, device: torch.device) -> Transformer:
    tm = cfg.train_module
    # 0. float8 (TrainModule checked it can run here: check_float8)
    if tm.float8 != "off":
        apply_float8(model, tm.float8)
    # 1. tensor parallelism
    if mesh.tp_mesh is not None:
        apply_tensor_parallel(model, mesh.tp_mesh)
    # 1b. context parallelism
    if mesh.cp_mesh is not None:
        apply_context_parallel(model, mesh.cp_mesh, tm.cp_config)
    # 1c. expert parallelism: the experts' weights become ep-sharded DTensors (FSDP then shards
    # them again over dp_mod_ep, as it does TP's)
    if mesh.ep_mesh is not None:
        apply_expert_parallel(model, mesh.ep_mesh)
    # 2. activation checkpointing
    if tm.ac_config is not None:
        apply_activation_checkpointing(model, tm.ac_config)
    # 3. compile
    if tm.compile_model:
        apply_compile(model)
    # 4 + 5. data parallelism and init
    if mesh.dp_name in ("fsdp", "hsdp"):
        dp = tm.dp_config
        # Reshard after forward even with one shard holder: keeping every block's bf16 copy
        # until backward was measured on one H100 to cost +2.6 GiB for olmo2-1b for no speed.
        apply_fsdp(model, mesh.dp_mesh, torch_dtype(dp.param_dtype), torch_dtype(dp.reduce_dtype),
                   reshard_after_forward=True, experts_mesh=mesh.dp_mod_ep_mesh)
        materialize(model, device, cfg.init_seed)
    elif mesh.dp_name == "ddp" and mesh.grad_ranks > 1:
        materialize(model, device, cfg.init_seed)
        apply_ddp(model, mesh.dp_group, device)
    else:
        materialize(model, device, cfg.init_seed)
    return model
