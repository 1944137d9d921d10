"""Optimizer, LR schedule and parallelism configs: everything the TrainModule owns."""

from __future__ import annotations

from typing import List, Literal, Optional, Tuple

from pydantic import Field, field_validator, model_validator

from .extensions.registry import register
from .extensions.schema import ChoiceSection, bind, choice_section

from .base import Config, DType
from .errors import field_error


class ParamGroupOverride(Config):
    """Different optimizer settings for the parameters whose names match `params`."""

    params: List[str] = Field(description="Glob patterns over parameter names, e.g. 'embeddings.weight' or '*.norm.*'.")
    lr: Optional[float] = Field(None, ge=0, description="Learning rate for this group; unset = optim.lr.")
    weight_decay: Optional[float] = Field(None, ge=0, description="Weight decay for this group; unset = optim.weight_decay.")


# The built-in optimizers, schedules, loss and train module, registered like an extension's
# (engine/extend.py); the shared settings are the sections' own fields.
register("optimizer", "adamw", "engine.optim:build_adam", None, "AdamW (decoupled weight decay).")
register("optimizer", "adam", "engine.optim:build_adam", None, "Adam.")
for _name, _doc in (("constant", "Constant after warm-up."), ("linear", "Linear decay to final_lr_ratio."),
                    ("cosine", "Cosine decay to final_lr_ratio."),
                    ("wsd", "Warmup-stable-decay: linear decay over the last decay_fraction.")):
    register("scheduler", _name, "engine.scheduler:build_schedule", None, _doc)
register("loss", "cross_entropy", "engine.nn.loss:build_cross_entropy", None,
         "Cross-entropy (with z-loss when z_loss_multiplier is set), chunked so all logits are never held.")
register("train_module", "standard", "engine.train_module.pipeline:standard_train_module", None,
         "The built-in step: micro-batches, grad accumulation, clipping, z-loss.")
LossConfig = choice_section("loss", "LossConfig", "cross_entropy", "The training objective.", __name__)


class OptimConfig(ChoiceSection):
    """AdamW (decoupled weight decay) or Adam, or an optimizer an extension registers."""

    name: str = Field("adamw", description="Optimizer: adamw, adam, or one an extension registers "
                      "(its settings under train_module.optim.<name>).")
    lr: float = Field(1e-3, gt=0, description="Peak learning rate.")
    betas: Tuple[float, float] = Field((0.9, 0.95), description="Adam (beta1, beta2).")
    eps: float = Field(1e-8, gt=0, description="Adam epsilon.")
    weight_decay: float = Field(0.1, ge=0, description="Weight decay (decoupled, AdamW).")
    fused: Optional[bool] = Field(None, description="Use torch's fused kernel; unset = fused on GPU, foreach on CPU.")
    group_overrides: List[ParamGroupOverride] = Field(
        default_factory=list, description="Per-parameter-group overrides, e.g. no weight decay on embeddings."
    )

    @model_validator(mode="after")
    def _betas(self) -> "OptimConfig":
        if not all(0.0 <= b < 1.0 for b in self.betas):
            raise ValueError(f"betas {self.betas} must each lie in [0, 1)")
        return self


bind("optimizer", OptimConfig, "name")


class SchedulerConfig(ChoiceSection):
    """Learning-rate schedule over max_duration (hard_stop does not change it)."""

    name: str = Field(
        "cosine", description="constant, linear decay, cosine decay, WSD (warmup-stable-decay), or a "
        "schedule an extension registers (its settings under train_module.scheduler.<name>)."
    )
    warmup_steps: int = Field(0, ge=0, description="Linear warm-up from 0, in steps.")
    final_lr_ratio: float = Field(0.1, ge=0, le=1, description="LR at the end as a fraction of the peak.")
    decay_fraction: float = Field(
        0.2, gt=0, le=1, description="WSD only: share of the run spent decaying at the end."
    )


bind("scheduler", SchedulerConfig, "name")


class DataParallelConfig(Config):
    """How data-parallel ranks share the model."""

    name: Literal["ddp", "fsdp", "hsdp"] = Field(
        "fsdp", description="ddp: full replicas. fsdp: params/grads/optimizer sharded over all ranks. "
        "hsdp: sharded within groups of shard_degree ranks, replicated across groups."
    )
    param_dtype: Optional[DType] = Field(
        None, description="Dtype params are gathered and computed in (e.g. bfloat16); unset = model.dtype."
    )
    reduce_dtype: DType = Field(DType.float32, description="Dtype of the gradient reduction.")
    shard_degree: Optional[int] = Field(
        None, gt=0, description="hsdp: ranks per shard group; unset = GPUs per node."
    )


class TensorParallelConfig(Config):
    """Megatron-style tensor parallelism (column/row-wise attention and MLP)."""

    degree: int = Field(2, gt=0, description="Ranks that split each layer; must divide heads and KV heads.")


class ContextParallelConfig(Config):
    """Context parallelism: each sequence split over `degree` ranks (long sequences that do not fit one GPU)."""

    degree: int = Field(2, gt=1, description="Ranks that split each sequence; must divide the heads and KV "
                        "heads (per TP rank) and 2 x degree must divide the sequence length.")
    attention: Literal["ulysses"] = Field(
        "ulysses", description="ulysses: two all-to-alls per attention turn sequence shards into head shards "
        "and back (any backend, gloo included). Ring attention is not built yet."
    )
    load_balancer: Literal["zig_zag", "none"] = Field(
        "zig_zag", description="zig_zag: rank r holds chunks r and 2 x degree - 1 - r of the sequence, so every "
        "rank holds as many early (cheap) as late (costly) causal positions. none: contiguous slices."
    )


PP_SCHEDULES = ("1F1B", "interleaved_1F1B", "gpipe", "zero_bubble")


class ExpertParallelConfig(Config):
    """Expert parallelism (MoE): each MoE block's experts split over `degree` ranks, tokens sent to
    their experts' ranks and back by all-to-all. The ranks are borrowed from data parallelism (as
    torchtitan does): the dp ranks form groups of `degree`; the rest of the model stays sharded
    over all dp ranks, the experts over dp / degree."""

    degree: int = Field(2, gt=1, description="Ranks that split each MoE block's experts; must divide "
                        "model.moe.num_experts and the data-parallel size. Needs dp_config.name = 'fsdp'.")


class PipelineParallelConfig(Config):
    """Pipeline parallelism: the block list cut into stages on `degree` ranks, micro-batches streamed through."""

    degree: int = Field(2, gt=1, description="Ranks in one pipeline; the first also holds the embeddings, "
                        "the last the final norm, the LM head and the loss.")
    schedule: Literal["1F1B", "interleaved_1F1B", "gpipe", "zero_bubble"] = Field(
        "1F1B", description="torch.distributed.pipelining schedule. 1F1B and gpipe: one stage per rank; "
        "interleaved_1F1B and zero_bubble (interleaved ZB1P): stages_per_rank stages per rank, smaller bubble."
    )
    stages_per_rank: Optional[int] = Field(
        None, gt=0, description="Stages each rank holds; unset = 1 for 1F1B / gpipe, 2 for the interleaved ones."
    )

    @property
    def interleaved(self) -> bool:
        return self.schedule in ("interleaved_1F1B", "zero_bubble")

    @property
    def local_stages(self) -> int:
        return self.stages_per_rank or (2 if self.interleaved else 1)

    @property
    def num_stages(self) -> int:
        return self.degree * self.local_stages

    @model_validator(mode="after")
    def _stages(self) -> "PipelineParallelConfig":
        if self.stages_per_rank and self.stages_per_rank > 1 and not self.interleaved:
            raise field_error("stages_per_rank", f"{self.schedule} runs one stage per rank; "
                              "use schedule interleaved_1F1B or zero_bubble for more")
        if self.stages_per_rank == 1 and self.interleaved:
            raise field_error("stages_per_rank", f"{self.schedule} needs at least 2 stages per rank")
        return self


class ActivationCheckpointingConfig(Config):
    """Trade compute for memory by recomputing activations in backward."""

    mode: Literal["full", "selected_blocks", "selected_modules", "budget"] = Field(
        "full", description="full: every block. selected_blocks: every block_interval-th block. "
        "selected_modules: modules matching `modules`. budget: let torch.compile choose (needs compile_model)."
    )
    block_interval: Optional[int] = Field(None, gt=0, description="selected_blocks: checkpoint every Nth block.")
    modules: Optional[List[str]] = Field(
        None, description="selected_modules: glob patterns over module names, e.g. 'blocks.*.mlp'."
    )
    activation_memory_budget: Optional[float] = Field(
        None, ge=0, le=1, description="budget: 0 = recompute everything, 1 = recompute nothing."
    )

    @model_validator(mode="after")
    def _mode_fields(self) -> "ActivationCheckpointingConfig":
        needs = {"selected_blocks": "block_interval", "selected_modules": "modules",
                 "budget": "activation_memory_budget"}
        field = needs.get(self.mode)
        if field and getattr(self, field) is None:
            raise ValueError(f"ac_config.mode = '{self.mode}' needs ac_config.{field}")
        return self


class TrainModuleConfig(ChoiceSection):
    """The training step: micro-batching, optimizer, schedule, precision and parallelism."""

    kind: str = Field("standard", description="Which train module: standard (built-in) or one an "
                      "extension registers (its settings under train_module.<kind>).")
    rank_microbatch_size: int = Field(
        4 * 256, gt=0, description="Tokens per forward/backward on one rank; gradients accumulate "
        "until the global batch is reached. Must be a multiple of the sequence length."
    )
    max_sequence_length: int = Field(256, gt=0, description="Longest sequence the step will see, in tokens.")
    optim: OptimConfig = Field(default_factory=OptimConfig, description="Optimizer.")
    scheduler: SchedulerConfig = Field(default_factory=SchedulerConfig, description="LR schedule.")
    loss: LossConfig = Field(default_factory=LossConfig, description="Training objective. Another loss than "
                             "cross_entropy computes the full logits (no chunked head).")
    max_grad_norm: Optional[float] = Field(None, gt=0, description="Clip the total gradient norm to this; unset = no clipping.")
    z_loss_multiplier: Optional[float] = Field(
        None, gt=0, description="Weight of the z-loss (logsumexp^2 of the logits), e.g. 1e-5; unset = off."
    )
    compile_model: bool = Field(False, description="torch.compile each transformer block.")
    float8: Literal["off", "tensorwise", "rowwise"] = Field(
        "off", description="Float8 matmuls in the transformer blocks' Linear layers via torchao (`pip "
        "install olmo-tui[gpu]`; Hopper or newer GPUs): tensorwise = one scale per tensor, rowwise = one per "
        "row (more accurate). The embeddings and the LM head stay in the compute dtype."
    )
    autocast_dtype: Optional[DType] = Field(
        None, description="Autocast dtype for the forward pass on GPU when params stay fp32; unset = none."
    )
    dp_config: Optional[DataParallelConfig] = Field(None, description="Data parallelism; unset = DDP when "
                                                    "there are several ranks.")
    tp_config: Optional[TensorParallelConfig] = Field(None, description="Tensor parallelism; unset = off.")
    cp_config: Optional[ContextParallelConfig] = Field(None, description="Context parallelism; unset = off.")
    pp_config: Optional[PipelineParallelConfig] = Field(None, description="Pipeline parallelism; unset = off.")
    ep_config: Optional[ExpertParallelConfig] = Field(None, description="Expert parallelism for MoE models "
                                                      "(ranks borrowed from data parallelism); unset = off.")
    ac_config: Optional[ActivationCheckpointingConfig] = Field(
        None, description="Activation checkpointing; unset = off."
    )
    label_ignore_index: int = Field(-100, description="Label id excluded from the loss.")

    @field_validator("float8", mode="before")
    @classmethod
    def _float8_off(cls, value):
        # `--train_module.float8=off` (and TOML `false`) arrive as the boolean False.
        return "off" if value is False else value


bind("train_module", TrainModuleConfig, "kind")
