"""Activation checkpointing: keep a module's inputs, recompute its activations in backward.

Modes (engine.config ActivationCheckpointingConfig):
  full              every block
  selected_blocks   blocks 0, N, 2N, ... (block_interval = N)
  selected_modules  modules whose name matches a glob, e.g. "blocks.*.mlp"
  budget            torch.compile's min-cut partitioner decides what to save under a memory
                    budget (torch._functorch.config.activation_memory_budget; 0 = recompute
                    everything, 1 = save everything); needs compile_model.

The module's `forward` is replaced by a checkpointed call of the original (non-reentrant), so
parameter names stay exactly the contract's (no wrapper module in the path).

With compile_model the blocks are compiled after this (parallelize.py), so the checkpoint sits
inside each block's compiled region (as torchtitan does): Dynamo captures the checkpoint call as
one higher-order op and AOTAutograd recomputes its body in the compiled backward. For that, the
replacement forward must be a plain Python function of this file. nn.Module.compile() compiles
the module's `_call_impl`, which Dynamo skips, so the first frame it can compile is whatever
`forward` is; `torch.utils.checkpoint.checkpoint` itself (a bare functools.partial of it, as
this file used to install) is a skipped, dynamo-disabled frame, and `fullgraph=True` then finds
nothing to compile and raises.
"""

from __future__ import annotations

import fnmatch
import types

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from engine.config import ActivationCheckpointingConfig
from engine.errors import UserError
from engine.nn.transformer import Transformer


def _checkpointed_forward(module: nn.Module, *args, **kwargs):
    # One function for every checkpointed module (bound per instance below, the original kept
    # on the module rather than in a closure): all checkpointed blocks share one compiled graph.
    return checkpoint(module._olmo_unchecked_forward, *args, use_reentrant=False, **kwargs)


def checkpoint_module(module: nn.Module) -> None:
    module._olmo_unchecked_forward = module.forward
    module.forward = types.MethodType(_checkpointed_forward, module)
    module._olmo_checkpointed = True


def apply_activation_checkpointing(model: Transformer, ac: ActivationCheckpointingConfig) -> None:
    if ac.mode == "full":
        for block in model.blocks.values():
            checkpoint_module(block)
    elif ac.mode == "selected_blocks":
        for i, block in enumerate(model.blocks.values()):
            if i % ac.block_interval == 0:
                checkpoint_module(block)
    elif ac.mode == "selected_modules":
        matched = [(name, m) for name, m in model.named_modules()
                   if name and any(fnmatch.fnmatchcase(name, pat) for pat in ac.modules)]
        if not matched:
            raise UserError("train_module.ac_config.modules",
                            f"{ac.modules} match no module (names look like 'blocks.0.mlp')")
        for _, module in matched:
            checkpoint_module(module)
    elif ac.mode == "budget":
        torch._functorch.config.activation_memory_budget = float(ac.activation_memory_budget)
