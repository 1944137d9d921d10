"""torch.compile per transformer block (fullgraph) and of the loss.

Compiling block by block keeps compile time flat in depth (all blocks share one graph and its
cache) and lets FSDP's hooks sit between compiled regions. nn.Module.compile() compiles in place,
so parameter names do not gain an `_orig_mod.` prefix.
"""

from __future__ import annotations

import torch

from engine.nn.fused_loss import chunk_objective
from engine.nn.transformer import Transformer


# The compiler backend; tests swap in one that inspects the partitioned graphs.
BACKEND = "inductor"


def apply_compile(model: Transformer) -> None:
    moe_blocks = {str(i) for i in model.moe_layers()}
    for name, block in model.blocks.items():
        if name in moe_blocks:
            # An MoE block's routing sizes its expert groups (and expert parallelism's all-to-all
            # splits) from token counts read on the host: a graph break. Its attention compiles;
            # the feed-forward runs eagerly (grouped GEMMs already are one kernel per projection).
            block.attention.compile(backend=BACKEND, fullgraph=True)
            continue
        block.compile(backend=BACKEND, fullgraph=True)
    # The loss upcasts (N, V) logits to fp32 for the logsumexp; compiled, the upcast fuses into
    # the reduction instead of materialising an fp32 copy of the logits.
    model.loss_fn = torch.compile(model.loss_fn, fullgraph=True)  # the configured loss (train_module.loss)
    # The chunked loss's per-chunk softmax / gradient: one fused pass over the chunk's logits.
    model.chunk_fn = torch.compile(chunk_objective, fullgraph=True, dynamic=False)
