"""Pipeline parallelism: the block list cut into stages over the pp ranks, micro-batches streamed
through them by a torch.distributed.pipelining schedule.

Stages: pp_config.num_stages = degree x stages per rank, the blocks split evenly in order (the
first stages take one more when they do not divide). The first stage also holds the
embeddings, the last the final norm and the LM head; the loss runs on the last stage's logits.
Rank r holds stages r, r + degree, ... (the looped layout of the interleaved schedules).

Each stage is a Transformer built with only its own modules, under their original names
(`blocks.5.mlp.w1.weight` stays that), so weight init, optimizer groups and checkpoint keys are
those of the whole model: a checkpoint reshards across pipeline degrees (train_module.py writes
the optimizer state flat, one key per parameter). Each stage is parallelized on its own (AC,
compile, FSDP over the dp mesh) and has its own optimizer.

Loss scaling is the TrainModule's: every micro-batch's CE sum is divided by the batch's token
count over all dp ranks (scale_grads=False: the schedule must not divide again).
"""

from __future__ import annotations

from typing import Dict, List, Optional, Tuple

import torch
import torch.distributed as dist
from torch.distributed.pipelining import PipelineStage
from torch.distributed.pipelining.schedules import (
    Schedule1F1B,
    ScheduleGPipe,
    ScheduleInterleaved1F1B,
    ScheduleInterleavedZeroBubble,
)

from engine.config import ExperimentConfig
from engine.config.parallel import stage_layers
from engine.distributed.parallelize import parallelize
from engine.nn.transformer import Transformer, build_model
from engine.optim import param_groups

from .train_module import TrainModule

SCHEDULES = {"1F1B": Schedule1F1B, "gpipe": ScheduleGPipe, "interleaved_1F1B": ScheduleInterleaved1F1B,
             "zero_bubble": ScheduleInterleavedZeroBubble}


def build_stage(cfg: ExperimentConfig, layers: range, first: bool, last: bool) -> Transformer:
    """A meta-device Transformer holding only this stage's modules, under their original names."""
    model = build_model(cfg.model, "meta")
    for name in [name for name in model.blocks if int(name) not in layers]:
        del model.blocks[name]
    if not first:
        model.embeddings = None
    if not last:
        model.norm = None
        model.lm_head = None
    return model


class _StageLoss:
    """The schedule's loss_fn on the last stage: the micro-batch's CE sum (+ z-loss) times the
    step's scale, with the detached sums kept for the metrics."""

    def __init__(self, model: Transformer, ignore_index: int, z_mult: Optional[float], device):
        self.model, self.ignore_index, self.z_mult, self.device = model, ignore_index, z_mult, device
        self.begin(1.0)

    def begin(self, scale) -> None:
        self.scale = scale
        self.sums: List[torch.Tensor] = []

    def totals(self, n_microbatches: int) -> torch.Tensor:
        """(CE sum, z sum) of the step's micro-batches. Only the last n: a schedule's first step
        also calls the loss once to infer the backward's shapes."""
        if not self.sums:
            return torch.zeros(2, device=self.device)
        return torch.stack(self.sums[-n_microbatches:]).sum(0)

    def __call__(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        ce_sum, z_sum = self.model.loss_fn(logits.flatten(0, 1), labels.flatten(), self.ignore_index,
                                           self.z_mult is not None)
        objective = ce_sum if z_sum is None else ce_sum + self.z_mult * z_sum
        self.sums.append(torch.stack((ce_sum.detach(), torch.zeros_like(ce_sum) if z_sum is None else z_sum.detach())))
        return objective * self.scale


class PipelineTrainModule(TrainModule):
    """A TrainModule whose model is this rank's pipeline stages (see the module docstring)."""

    def _build_model_parts(self) -> List[Transformer]:
        cfg, pp = self.cfg, self.tm_cfg.pp_config
        param_groups(build_model(cfg.model, "meta"), self.tm_cfg.optim)  # every glob matches the whole model
        pp_mesh = self.mesh.pp_mesh
        self.pp_group = pp_mesh.get_group()
        pp_rank, num_stages = pp_mesh.get_local_rank(), pp.num_stages
        self.stage_ids = [pp_rank + k * pp.degree for k in range(pp.local_stages)]
        layers = stage_layers(cfg.model.n_layers, num_stages)
        parts, self.stages = [], []
        for sid in self.stage_ids:
            part = build_stage(cfg, layers[sid], first=sid == 0, last=sid == num_stages - 1)
            part = parallelize(self._with_loss(part), cfg, self.mesh, self.device)
            parts.append(part)
            self.stages.append(PipelineStage(part, sid, num_stages, self.device, group=self.pp_group))
        self.has_first = 0 in self.stage_ids
        self.has_last = num_stages - 1 in self.stage_ids
        last = parts[self.stage_ids.index(num_stages - 1)] if self.has_last else parts[0]
        self.stage_loss = _StageLoss(last, self.tm_cfg.label_ignore_index, self.tm_cfg.z_loss_multiplier,
                                     self.device)
        self._schedules: Dict[int, object] = {}
        return parts

    def _schedule(self, n_microbatches: int):
        if n_microbatches not in self._schedules:
            kind = SCHEDULES[self.tm_cfg.pp_config.schedule]
            stages = self.stages if self.tm_cfg.pp_config.interleaved else self.stages[0]
            self._schedules[n_microbatches] = kind(stages, n_microbatches=n_microbatches,
                                                   loss_fn=self.stage_loss, scale_grads=False)
        return self._schedules[n_microbatches]

    def _run(self, ids: torch.Tensor, labels: torch.Tensor, scale, train: bool) -> Tuple[torch.Tensor, torch.Tensor]:
        """Stream the batch through the pipeline; (CE sum, z sum) of the last stage, summed to
        every pp rank (the others contribute zeros)."""
        size = max(1, self.tm_cfg.rank_microbatch_size // ids.shape[1])  # instances per micro-batch
        pad = -ids.shape[0] % size
        if pad:  # a short (eval) batch: fill the last micro-batch with ignored instances, so every
            # micro-batch has the shape the stages exchange
            ids = torch.cat((ids, ids.new_zeros(pad, ids.shape[1])))
            labels = torch.cat((labels, labels.new_full((pad, labels.shape[1]), self.ignore_index)))
        n_microbatches = ids.shape[0] // size
        schedule = self._schedule(n_microbatches)
        self.stage_loss.begin(scale)
        args = (ids,) if self.has_first else ()
        with self._autocast():
            (schedule.step if train else schedule.eval)(*args, target=labels, losses=[])
        sums = self.stage_loss.totals(n_microbatches)
        dist.all_reduce(sums, group=self.pp_group)
        return sums[0], sums[1]

    def train_batch(self, batch):
        for part in self.model_parts:
            part.train()
        ids, labels = self.labels_for(batch)
        tokens = (labels != self.ignore_index).sum().float()
        global_tokens = self._all_reduce(tokens).clamp_min(1.0)
        ce, z = self._run(ids, labels, float(self.mesh.grad_ranks) / global_tokens, train=True)
        metrics = {"ce_loss": self._all_reduce(ce) / global_tokens}
        if self.tm_cfg.z_loss_multiplier:
            metrics["z_loss"] = self._all_reduce(z) / global_tokens
        return metrics

    @torch.no_grad()
    def eval_batch(self, batch):
        for part in self.model_parts:
            part.eval()
        ids, labels = self.labels_for(batch)
        ce, _ = self._run(ids, labels, 1.0, train=False)
        count = (labels != self.ignore_index).sum().float()
        return self._all_reduce(ce), self._all_reduce(count)


def build_train_module(cfg: ExperimentConfig, device: Optional[torch.device] = None) -> TrainModule:
    """The registered train module train_module.kind picks (engine/extend.py): its builder gets
    its own config and the experiment's, and returns the TrainModule class to build."""
    tm = cfg.train_module
    return tm.component().builder()(tm.component_config(), cfg)(cfg, device)


def standard_train_module(_own, cfg: ExperimentConfig) -> type:
    """The built-in train module (registered as "standard" in engine/config/train_module.py):
    the pipeline one when train_module.pp_config is set."""
    return PipelineTrainModule if cfg.train_module.pp_config is not None else TrainModule
