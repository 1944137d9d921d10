"""Float8 training (torchao): the blocks' Linear layers compute their matmuls in float8.

`train_module.float8` picks torchao's recipe: "tensorwise" (one dynamic scale per tensor, the
fastest) or "rowwise" (one scale per row of each operand, closer to bf16). Weights, gradients
and optimizer state keep their dtypes; only the matmul inputs are cast, with fresh scales each
step. The embeddings and the LM head stay in the compute dtype (the head's 100k-wide output
is where float8 costs the most accuracy; torchtitan and OLMo-core leave it out too), and so
does any Linear whose sizes are not multiples of 16 (float8 GEMMs need that).

Placement (parallelize() step 0): the swap to torchao's Float8Linear happens on the meta model
before everything else, so compile traces the float8 casts into each block's graph and FSDP
shards the swapped modules. Parameter names do not change, so checkpoints load either way.

Needs a CUDA GPU of compute capability 8.9 or newer (Ada, Hopper, Blackwell) and the optional
`gpu` extra (a pinned torchao); a clear UserError otherwise. Tensor parallelism with float8
would need torchao's float8 TP styles, which the engine does not wire: refused.
"""

from __future__ import annotations

import importlib.util
from typing import Optional, Tuple

import torch
from torch import nn

from engine.errors import UserError

FIELD = "train_module.float8"
MODES = ("off", "tensorwise", "rowwise")
MIN_CAPABILITY = (8, 9)


def float8_problem(mode: str, device_type: str, capability: Optional[Tuple[int, int]] = None,
                   device_name: str = "", torchao: bool = True, tp_enabled: bool = False) -> Optional[str]:
    """Why `mode` cannot run on this device (one line), or None when it can (or is off). Pure:
    check_float8 gathers the facts (device, its compute capability, whether torchao imports)."""
    if mode == "off":
        return None
    if mode not in MODES:
        return f"{mode!r} is not one of {', '.join(MODES)}"
    if device_type != "cuda":
        return (f"'{mode}' needs a CUDA GPU (compute capability 8.9+: H100, H200, L40S, B200); this run is on "
                f"{device_type}: set {FIELD} = \"off\"")
    if capability is not None and tuple(capability) < MIN_CAPABILITY:
        return (f"'{mode}' needs compute capability 8.9+ (H100, H200, L40S, B200); {device_name or 'this GPU'} "
                f"has {capability[0]}.{capability[1]}: set {FIELD} = \"off\"")
    if not torchao:
        return f"'{mode}' needs torchao: pip install 'olmo-tui[gpu]' (or set {FIELD} = \"off\")"
    if tp_enabled:
        return (f"'{mode}' with tensor parallelism is not supported: unset train_module.tp_config or set "
                f"{FIELD} = \"off\"")
    return None


def check_float8(mode: str, device: torch.device, tp_enabled: bool = False) -> None:
    """Raise the UserError of float8_problem for this process's device."""
    if mode == "off":
        return
    cuda = device.type == "cuda"
    problem = float8_problem(
        mode, device.type, torch.cuda.get_device_capability(device) if cuda else None,
        torch.cuda.get_device_name(device) if cuda else "", importlib.util.find_spec("torchao") is not None,
        tp_enabled)
    if problem:
        raise UserError(FIELD, problem)


def _block_linear(module: nn.Module, fqn: str) -> bool:
    return (isinstance(module, nn.Linear) and module.in_features % 16 == 0
            and module.out_features % 16 == 0)


def apply_float8(model: nn.Module, mode: str) -> int:
    """Swap the blocks' Linear layers for torchao Float8Linear (in place); returns how many."""
    from torchao.float8 import Float8LinearConfig, convert_to_float8_training

    config = Float8LinearConfig.from_recipe_name(mode)
    convert_to_float8_training(model.blocks, config=config, module_filter_fn=_block_linear)
    return sum(1 for m in model.blocks.modules() if type(m).__name__ == "Float8Linear")
