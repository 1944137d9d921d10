"""AdamW / Adam with parameter-group overrides matched by glob over parameter names."""

from __future__ import annotations

import fnmatch
from typing import Dict, List

import torch
from torch import nn

from engine.config import OptimConfig
from engine.errors import UserError
from engine.nn.transformer import clean_param_name


def param_groups(model: nn.Module, cfg: OptimConfig, require_match: bool = True) -> List[Dict]:
    """One group per override plus the default group. A parameter matched by two overrides is
    an error (as in OLMo-core): silently taking the first would leave the second's settings
    unapplied, and the second might then be reported as matching nothing.

    Each group records `initial_lr` (its peak LR; the scheduler scales it) and `name`.
    require_match=False: a pipeline stage holds part of the model, so an override may match
    nothing there (the pipeline checks the globs against the whole model once).
    """
    buckets: List[List[torch.Tensor]] = [[] for _ in range(len(cfg.group_overrides) + 1)]
    matched = [False] * len(cfg.group_overrides)
    for raw_name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        name = clean_param_name(raw_name)
        hits = [(i, pattern) for i, override in enumerate(cfg.group_overrides)
                for pattern in override.params if fnmatch.fnmatchcase(name, pattern)]
        groups_hit = sorted({i for i, _ in hits})
        if len(groups_hit) > 1:
            (first, a), (second, b) = (next(hit for hit in hits if hit[0] == i) for i in groups_hit[:2])
            raise UserError("train_module.optim.group_overrides",
                            f"parameter {name!r} matches both group_overrides[{first}].params {a!r} and "
                            f"group_overrides[{second}].params {b!r}; a parameter belongs to one group: "
                            "narrow one of the globs")
        if groups_hit:
            buckets[groups_hit[0]].append(param)
            matched[groups_hit[0]] = True
        else:
            buckets[-1].append(param)
    for i, hit in enumerate(matched):
        if require_match and not hit:
            raise UserError(f"train_module.optim.group_overrides[{i}].params",
                            f"{cfg.group_overrides[i].params} match no parameter "
                            "(names look like 'embeddings.weight', 'blocks.0.mlp.w1.weight')")
    groups = []
    for i, override in enumerate(cfg.group_overrides):
        lr = cfg.lr if override.lr is None else override.lr
        wd = cfg.weight_decay if override.weight_decay is None else override.weight_decay
        groups.append({"params": buckets[i], "lr": lr, "initial_lr": lr, "weight_decay": wd,
                       "name": f"override{i}"})
    if buckets[-1]:
        groups.append({"params": buckets[-1], "lr": cfg.lr, "initial_lr": cfg.lr,
                       "weight_decay": cfg.weight_decay, "name": "default"})
    return groups


def build_optimizer(model: nn.Module, cfg: OptimConfig, device: torch.device,
                    require_match: bool = True) -> torch.optim.Optimizer:
    """The registered optimizer train_module.optim.name picks, over the parameter groups."""
    return cfg.component().builder()(cfg.component_config(), cfg, param_groups(model, cfg, require_match), device)


def build_adam(_own, cfg: OptimConfig, groups: List[Dict], device: torch.device) -> torch.optim.Optimizer:
    """The built-in AdamW and Adam (registered in engine/config/train_module.py)."""
    fused = cfg.fused if cfg.fused is not None else device.type == "cuda"
    kind = torch.optim.AdamW if cfg.name == "adamw" else torch.optim.Adam
    impl = {"fused": True} if fused else {"foreach": True}
    return kind(groups, lr=cfg.lr, betas=tuple(cfg.betas), eps=cfg.eps, **impl)
