"""Megatron-style tensor parallelism with DTensor, plus sequence parallelism for the norms.

Between blocks the residual stream is sharded over the sequence (Shard(1)); each attention /
MLP gathers it (Replicate), runs column-wise q/k/v and w1/w3 (each rank holds whole heads /
hidden slices) and row-wise w_out / w2, whose outputs are reduce-scattered back to Shard(1).
Norms then act on sequence shards (SequenceParallel), so they cost 1/tp of the work.
"""

from __future__ import annotations

from torch.distributed.device_mesh import DeviceMesh
from torch import nn
from torch.distributed.tensor import Replicate, Shard, distribute_tensor
from torch.distributed.tensor.parallel import (
    ColwiseParallel,
    PrepareModuleInput,
    PrepareModuleInputOutput,
    RowwiseParallel,
    SequenceParallel,
    parallelize_module,
)

from engine.errors import UserError
from engine.nn.moe import MoE
from engine.nn.transformer import Transformer


def apply_tensor_parallel(model: Transformer, tp_mesh: DeviceMesh) -> None:
    cfg = model.config
    if cfg.tie_embeddings:
        raise UserError("train_module.tp_config", "tensor parallelism does not support tied embeddings")
    model.fused_loss = False  # the chunked head needs a plain weight; TP's head is a DTensor
    parallelize_module(model, tp_mesh, {
        # (B, T) ids, replicated -> (B, T/tp, d) sequence shards
        "embeddings": RowwiseParallel(input_layouts=Replicate(), output_layouts=Shard(1)),
        "norm": SequenceParallel(),
        # full logits on every TP rank: the loss sees the whole vocab
        "lm_head": ColwiseParallel(input_layouts=Shard(1), output_layouts=Replicate(), use_local_output=True),
    })
    for block in model.blocks.values():
        # Reordered-norm (olmo2/3) blocks normalise the sub-layer outputs, which are Shard(1) too;
        # Gemma's post-norms likewise. The attention's (cos, sin, window mask) are replicated.
        plan = {
            "attention_norm": SequenceParallel(use_local_output=True),
            "mlp_norm": SequenceParallel(use_local_output=True),
            "attention": PrepareModuleInput(input_layouts=(Shard(1), None, None, None),
                                            desired_input_layouts=(Replicate(), None, None, None)),
            "attention.w_q": ColwiseParallel(),
            "attention.w_k": ColwiseParallel(),
            "attention.w_v": ColwiseParallel(),
            "attention.w_out": RowwiseParallel(output_layouts=Shard(1)),
            "mlp": PrepareModuleInput(input_layouts=(Shard(1),), desired_input_layouts=(Replicate(),)),
            "mlp.w1": ColwiseParallel(),
            "mlp.w3": ColwiseParallel(),
            "mlp.w2": RowwiseParallel(output_layouts=Shard(1)),
        }
        if isinstance(block.mlp, MoE):
            # TP splits the attention only: every TP rank runs the MoE feed-forward on the whole
            # sequence with all its weights (Replicate DTensors, computed through their local
            # copies), so their gradients agree across the group without a reduction; the output
            # goes back to this rank's sequence shard.
            for module in block.mlp.modules():
                for name, param in list(module.named_parameters(recurse=False)):
                    setattr(module, name, nn.Parameter(distribute_tensor(param, tp_mesh, [Replicate()])))
            plan = {k: v for k, v in plan.items() if k != "mlp" and not k.startswith("mlp.")}
            plan["mlp"] = PrepareModuleInputOutput(
                input_layouts=(Shard(1),), desired_input_layouts=(Replicate(),), use_local_input=True,
                output_layouts=(Replicate(),), desired_output_layouts=(Shard(1),), use_local_output=True)
        if cfg.gemma_blocks:
            plan["attention_post_norm"] = SequenceParallel(use_local_output=True)
            plan["mlp_post_norm"] = SequenceParallel(use_local_output=True)
        if cfg.qk_norm and cfg.per_head_qk_norm:
            # Per-head QK-norm (qwen3, gemma3) sees q / k as (B, T, heads, hd) with this rank's
            # heads: the heads dim is sharded like a sequence dim, the weight replicated and its
            # gradient summed over the group by SequenceParallel.
            plan["attention.q_norm"] = SequenceParallel(sequence_dim=2, use_local_output=True)
            plan["attention.k_norm"] = SequenceParallel(sequence_dim=2, use_local_output=True)
        parallelize_module(block, tp_mesh, plan)
        if cfg.qk_norm and not cfg.per_head_qk_norm:
            # QK-norm spans all heads; each rank holds its heads' slice of q / k, so the norm
            # weights are sharded the same way and the mean square is summed over the group.
            for norm in (block.attention.q_norm, block.attention.k_norm):
                norm.weight = nn.Parameter(distribute_tensor(norm.weight, tp_mesh, [Shard(0)]))
                norm.tp_mesh = tp_mesh
