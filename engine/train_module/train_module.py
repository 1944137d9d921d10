"""TrainModule: the model, its optimizer and LR schedule, and one training step.

Usage (the Trainer's loop):
    tm = TrainModule(cfg)                      # builds, parallelizes and initialises the model
    tm.set_max_steps(n)                        # from trainer.max_duration (hard_stop: never)
    metrics = tm.train_batch({"input_ids": ids})   # forward/backward over micro-batches
    metrics |= tm.optim_step()                 # clip, schedule, step, zero grads
    loss_sum, tokens = tm.eval_batch({"input_ids": ids, "label_mask": mask})

Loss: labels are input_ids shifted left by one (the last position of each instance and masked
positions are ignored). Every micro-batch's summed CE is divided by the number of non-ignored
labels in the WHOLE batch across ALL data-parallel ranks, so the gradient is the same whatever
the micro-batch size or the number of ranks. Data-parallel wrappers average gradients over
ranks; the loss is multiplied by the dp size to turn that average back into the sum.

Metrics are device tensors (no host sync); read them when you log.
"""

from __future__ import annotations

import contextlib
from typing import Any, Dict, List, Optional, Tuple

import torch
import torch.distributed as dist
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_optimizer_state_dict,
    set_model_state_dict,
    set_optimizer_state_dict,
)

from engine.config import ExperimentConfig
from engine.distributed.expert_parallel import clip_grad_norm_ as clip_grad_norm_by_mesh
from engine.distributed.float8 import check_float8
from engine.distributed.init import default_device
from engine.distributed.mesh import ParallelMesh, build_mesh
from engine.distributed.parallelize import parallelize, torch_dtype
from engine.nn.transformer import Transformer, build_model
from engine.optim import build_optimizer

from .router_stats import RouterStats


class TrainModule:
    def __init__(self, cfg: ExperimentConfig, device: Optional[torch.device] = None,
                 mesh: Optional[ParallelMesh] = None):
        self.cfg = cfg
        self.tm_cfg = cfg.train_module
        self.device = device or default_device(torch.cuda.current_device() if torch.cuda.is_available() else 0)
        if self.device.type == "cuda":
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
        self.mesh = mesh or build_mesh(cfg, self.device.type)
        check_float8(self.tm_cfg.float8, self.device, tp_enabled=self.mesh.tp_mesh is not None)
        # One part, or (pipeline parallelism: engine/train_module/pipeline.py) this rank's stages,
        # each a Transformer holding only its blocks under their original names.
        self.model_parts: List[Transformer] = self._build_model_parts()
        self.model: Transformer = self.model_parts[0]
        self.optimizers = [build_optimizer(part, self.tm_cfg.optim, self.device, require_match=self.mesh.pp_mesh is None)
                           for part in self.model_parts]
        self.optimizer = self.optimizers[0]
        scheduler = self.tm_cfg.scheduler  # the registered schedule train_module.scheduler.name picks
        self.lr_schedule = scheduler.component().builder()(scheduler.component_config(), scheduler)
        self.step = 0  # optimizer steps taken: the scheduler's position
        self.max_steps: Optional[int] = cfg.steps_for(cfg.trainer.max_duration)
        self.ignore_index = self.tm_cfg.label_ignore_index
        self._autocast_dtype = self._pick_autocast()
        self.router_stats = RouterStats({i: m for part in self.model_parts for i, m in part.moe_layers().items()},
                                        self.device)

    # ---- set-up -------------------------------------------------------------------------------
    def _build_model_parts(self) -> List[Transformer]:
        return [parallelize(self._with_loss(build_model(self.cfg.model, "meta")), self.cfg, self.mesh, self.device)]

    def _with_loss(self, model: Transformer) -> Transformer:
        """The registered loss train_module.loss.kind picks; another than the built-in
        cross_entropy takes the plain path (the chunked head is cross-entropy's own)."""
        loss = self.tm_cfg.loss
        model.loss_fn = loss.component().builder()(loss.component_config())
        model.fused_loss = model.fused_loss and loss.component().name == "cross_entropy"
        return model

    def _pick_autocast(self) -> Optional[torch.dtype]:
        """Autocast on GPU when asked, or when bf16 params were asked for but no FSDP applies
        (DDP, or a plain process): matmuls then run in bf16 as they would under FSDP."""
        if self.device.type != "cuda":
            return None
        if self.tm_cfg.autocast_dtype is not None:
            return torch_dtype(self.tm_cfg.autocast_dtype)
        dp = self.tm_cfg.dp_config
        if dp is not None and dp.param_dtype is not None and self.mesh.dp_name not in ("fsdp", "hsdp"):
            return torch_dtype(dp.param_dtype)
        return None

    @property
    def dp_rank(self) -> int:
        return self.mesh.dp_rank

    @property
    def dp_world_size(self) -> int:
        return self.mesh.dp_size

    def set_max_steps(self, max_steps: Optional[int]) -> None:
        self.max_steps = max_steps

    def _autocast(self):
        if self._autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self._autocast_dtype)

    def _all_reduce(self, t: torch.Tensor) -> torch.Tensor:
        """Sum over the ranks that hold different tokens (dp x cp)."""
        if self.mesh.dp_group is not None and self.mesh.grad_ranks > 1:
            dist.all_reduce(t, group=self.mesh.dp_group)
        return t

    # ---- batches ------------------------------------------------------------------------------
    def labels_for(self, batch: Dict[str, Any]) -> Tuple[torch.Tensor, torch.Tensor]:
        """(input_ids, labels) on the device; labels[t] = input_ids[t+1], ignored where masked."""
        ids = batch["input_ids"].to(self.device, non_blocking=True)  # (N, T)
        labels = torch.full_like(ids, self.ignore_index)
        labels[:, :-1] = ids[:, 1:]
        mask = batch.get("label_mask")
        if mask is not None:
            mask = mask.to(self.device, non_blocking=True)
            labels[:, :-1].masked_fill_(~mask[:, 1:], self.ignore_index)
        cp = self.model.cp
        if cp is not None:  # context parallelism: this rank's tokens (labels shifted before the cut)
            ids, labels = cp.shard(ids), cp.shard(labels)
        return ids, labels

    def _micro_batches(self, n: int, local_len: int):
        # rank_microbatch_size counts whole sequences: a cp rank holds 1/cp of each one's tokens
        size = max(1, self.tm_cfg.rank_microbatch_size // (local_len * self.mesh.cp_size))  # instances
        return [(start, min(start + size, n)) for start in range(0, n, size)]

    # ---- training -----------------------------------------------------------------------------
    def train_batch(self, batch: Dict[str, Any]) -> Dict[str, torch.Tensor]:
        """Forward + backward over the rank's batch, accumulating gradients.

        Returns {"ce_loss": scalar, "z_loss": scalar (when configured)}: the global-batch means;
        for an MoE model also the router metrics of RouterStats (moe/*).
        """
        self.model.train()
        ids, labels = self.labels_for(batch)
        tokens = (labels != self.ignore_index).sum().float()
        # One tiny all-reduce up front: every micro-batch divides by the global count.
        global_tokens = self._all_reduce(tokens).clamp_min(1.0)
        z_mult = self.tm_cfg.z_loss_multiplier
        ce_total = torch.zeros((), device=self.device)
        z_total = torch.zeros((), device=self.device) if z_mult else None
        # Gradients are averaged over dp x cp ranks by the wrappers: scale back to a sum.
        scale = float(self.mesh.grad_ranks)
        micro = self._micro_batches(ids.shape[0], ids.shape[1])
        for i, (a, b) in enumerate(micro):
            self._set_grad_sync(i == len(micro) - 1)
            with self._autocast():
                objective, ce_sum, z_sum = self.model(ids[a:b], labels=labels[a:b], ignore_index=self.ignore_index,
                                                      z_loss_multiplier=z_mult, **self._documents(batch, a, b))
            self.router_stats.add(labels[a:b] != self.ignore_index)
            (objective * (scale / global_tokens)).backward()
            ce_total += ce_sum
            if z_mult:
                z_total += z_sum
        metrics = {"ce_loss": self._all_reduce(ce_total) / global_tokens}
        if z_mult:
            metrics["z_loss"] = self._all_reduce(z_total) / global_tokens
        metrics.update(self.router_stats.collect(self._all_reduce, global_tokens))
        return metrics

    def _documents(self, batch: Dict[str, Any], a: int, b: int) -> Dict[str, torch.Tensor]:
        """{"doc_ids": rows a..b} for per-document attention (dataset.document_mask), else {}."""
        if not self.cfg.dataset.document_mask or "doc_ids" not in batch:
            return {}
        return {"doc_ids": batch["doc_ids"][a:b].to(self.device, non_blocking=True)}

    def _set_grad_sync(self, sync: bool) -> None:
        # FSDP reduce-scatters every micro-batch (keeps gradients sharded, so memory stays low);
        # DDP can skip the all-reduce until the last micro-batch.
        if self.mesh.dp_name == "ddp" and self.mesh.grad_ranks > 1:
            self.model.set_requires_gradient_sync(sync)

    def optim_step(self) -> Dict[str, Any]:
        """Clip, set the scheduled LR, step, zero the grads. Returns {"lr": float, "grad_norm"}."""
        metrics: Dict[str, Any] = {}
        if self.tm_cfg.max_grad_norm is not None:
            metrics["grad_norm"] = self._clip_grad_norm(self.tm_cfg.max_grad_norm)
        factor = self.lr_schedule(self.step, self.max_steps)
        for optimizer in self.optimizers:
            for group in optimizer.param_groups:
                group["lr"] = group["initial_lr"] * factor
        metrics["lr"] = self.optimizer.param_groups[-1]["lr"]
        for optimizer in self.optimizers:
            optimizer.step()
        self.zero_grads()
        self.step += 1
        return metrics

    def skip_optim_step(self) -> Dict[str, Any]:
        """The step without its update (the stability monitor's skip): the gradients are dropped,
        the LR schedule moves on as if it had stepped. Returns {"lr": float}."""
        self.zero_grads()
        self.step += 1
        return {"lr": self.optimizer.param_groups[-1]["lr"]}

    def _clip_grad_norm(self, max_norm: float) -> torch.Tensor:
        """Clip by the norm over every gradient of the model: this rank's parts, FSDP shards
        (DTensor: full_tensor sums the shards' squares) and, under pipeline parallelism, the
        other stages' ranks (the squares summed over the pp group)."""
        params = [p for part in self.model_parts for p in part.parameters()]
        if self.mesh.ep_mesh is not None:  # experts and the rest sit on different meshes (no pp with MoE)
            return clip_grad_norm_by_mesh(params, max_norm)
        grads = [p.grad for p in params if p.grad is not None]
        norm = torch.nn.utils.get_total_norm(grads, foreach=True)
        if hasattr(norm, "full_tensor"):
            norm = norm.full_tensor()
        if self.mesh.pp_mesh is not None:
            square = norm ** 2
            dist.all_reduce(square, group=self.mesh.pp_mesh.get_group())
            norm = square.sqrt()
        torch.nn.utils.clip_grads_with_norm_(params, max_norm, norm, foreach=True)
        return norm

    def zero_grads(self) -> None:
        for optimizer in self.optimizers:
            optimizer.zero_grad(set_to_none=True)

    @torch.no_grad()
    def eval_batch(self, batch: Dict[str, Any]) -> Tuple[torch.Tensor, torch.Tensor]:
        """(CE summed over non-ignored labels, their count), both summed over dp ranks."""
        self.model.eval()
        ids, labels = self.labels_for(batch)
        ce = torch.zeros((), device=self.device)
        for a, b in self._micro_batches(ids.shape[0], ids.shape[1]):
            with self._autocast():
                _, ce_sum, _ = self.model(ids[a:b], labels=labels[a:b], ignore_index=self.ignore_index,
                                          **self._documents(batch, a, b))
            ce += ce_sum
        count = (labels != self.ignore_index).sum().float()
        return self._all_reduce(ce), self._all_reduce(count)

    # ---- checkpoint state -----------------------------------------------------------------------
    def state_dict(self) -> Dict[str, Any]:
        """DCP-ready: sharded tensors stay sharded (DTensor), so dcp.save/load reshard freely.

        Keys are the parameters' own names whatever the parallelism, and the optimizer state is
        flat (state.<param>.exp_avg, param_groups.<param>.lr, ...): each pipeline rank writes its
        own parameters' keys, so a checkpoint reshards across pipeline degrees as across dp ones.
        """
        model: Dict[str, Any] = {}
        optim: Dict[str, Any] = {}
        for part, optimizer in zip(self.model_parts, self.optimizers, strict=True):
            model.update(get_model_state_dict(part))
            optim.update(get_optimizer_state_dict(part, optimizer, options=_FLAT))
        return {"model": model, "optim": optim, "scheduler": {"step": self.step}}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        for part, optimizer in zip(self.model_parts, self.optimizers, strict=True):
            own = get_model_state_dict(part).keys()
            set_model_state_dict(part, {k: state["model"][k] for k in own}, options=StateDictOptions(strict=True))
            own = get_optimizer_state_dict(part, optimizer, options=_FLAT).keys()
            set_optimizer_state_dict(part, optimizer, {k: state["optim"][k] for k in own}, options=_FLAT)
        self.step = int(state["scheduler"]["step"])


_FLAT = StateDictOptions(flatten_optimizer_state_dict=True)

