"""DDP: full replicas, gradients all-reduced (bucketed, overlapped with backward).

Uses torch's composable `replicate` (DDP's reducer attached by hooks), so the model keeps its
type and parameter names. Mixed precision under DDP is autocast (see the train module).
"""

from __future__ import annotations

import torch.distributed as dist
from torch.distributed._composable.replicate import replicate

from engine.nn.transformer import Transformer


def apply_ddp(model: Transformer, dp_group: dist.ProcessGroup, device) -> None:
    kwargs = {"device_ids": [device.index]} if device.type == "cuda" else {}
    replicate(model, process_group=dp_group, **kwargs)
