"""model.moe: a mixture-of-experts feed-forward in place of the gated MLP (OLMoE, Mixtral style).

Each MoE block routes every token to `top_k` of `num_experts` gated-MLP experts (dropless: no
capacity limit, no token is ever dropped), optionally plus shared experts every token passes
through. Blocks listed in `dense_layers` keep the plain gated MLP, so dense and MoE blocks mix.
"""

from __future__ import annotations

from typing import List, Literal, Optional

from pydantic import Field, model_validator

from .base import Config
from .errors import Issue, field_error

# torch._grouped_mm needs every row stride to be a multiple of 16 bytes: 8 bf16 / 4 fp32 features.
GROUPED_MM_MULTIPLE = 8


class MoEConfig(Config):
    """Mixture-of-experts feed-forward (dropless, top-k routing)."""

    num_experts: int = Field(8, ge=2, description="Routed experts per MoE block (OLMoE-1B-7B: 64).")
    top_k: int = Field(2, ge=1, description="Experts each token is routed to (OLMoE-1B-7B: 8). Active "
                       "parameters and FLOPs per token count these k experts only.")
    hidden_size: int = Field(256, gt=0, description="Hidden size of each expert's gated MLP, in features "
                             "(OLMoE-1B-7B: 1024).")
    num_shared_experts: int = Field(0, ge=0, description="Experts of the same size that every token passes "
                                    "through besides its routed ones (DeepSeek-MoE style); 0 = none.")
    gating: Literal["softmax", "sigmoid"] = Field(
        "softmax", description="Router scores: softmax over the experts (OLMoE, Mixtral) or an independent "
        "sigmoid per expert (DeepSeek-V3).",
    )
    normalize_top_k: bool = Field(False, description="Rescale each token's k routing weights to sum to 1 "
                                  "(Mixtral, Qwen-MoE: true; OLMoE: false).")
    aux_loss_weight: Optional[float] = Field(
        0.01, ge=0, description="Weight of the load-balancing loss num_experts x sum_i f_i P_i (Switch "
        "Transformer; f_i = share of routed tokens, P_i = mean router probability of expert i; 1.0 when "
        "perfectly balanced). Computed over each micro-batch's tokens on each rank; unset = off.",
    )
    z_loss_weight: Optional[float] = Field(
        0.001, ge=0, description="Weight of the router z-loss, mean of logsumexp(router logits)^2 (ST-MoE): "
        "keeps router logits small; unset = off.",
    )
    dense_layers: List[int] = Field(
        default_factory=list, description="0-based indices of blocks that keep the dense gated MLP "
        "(e.g. [0] for a dense first layer); every other block is an MoE block.",
    )
    implementation: Literal["grouped", "loop"] = Field(
        "grouped", description="grouped: all experts in one torch._grouped_mm per projection (fast). loop: "
        "one matmul per expert, the reference path.",
    )

    @model_validator(mode="after")
    def _rules(self) -> "MoEConfig":
        if self.top_k > self.num_experts:
            raise field_error("top_k", f"{self.top_k} exceeds num_experts ({self.num_experts})")
        if self.implementation == "grouped" and self.hidden_size % GROUPED_MM_MULTIPLE:
            raise field_error("hidden_size", f"{self.hidden_size} must be a multiple of {GROUPED_MM_MULTIPLE} "
                              "for implementation 'grouped' (torch._grouped_mm's 16-byte row alignment); "
                              "use implementation 'loop'")
        if len(set(self.dense_layers)) != len(self.dense_layers) or any(i < 0 for i in self.dense_layers):
            raise field_error("dense_layers", f"{self.dense_layers} must be distinct indices >= 0")
        return self

    def is_moe_layer(self, index: int) -> bool:
        return index not in self.dense_layers


def expert_parallel_issues(cfg) -> List[Issue]:
    """Rules of train_module.ep_config against the model and the mesh (cfg: ExperimentConfig)."""
    tm = cfg.train_module
    if tm.ep_config is None:
        return []
    degree, moe = tm.ep_config.degree, cfg.model.moe
    field = "train_module.ep_config.degree"
    if moe is None:
        return [Issue((field, "model.moe"), "expert parallelism needs an MoE model: set model.moe or unset "
                      "train_module.ep_config")]
    issues = []
    if moe.num_experts % degree:
        issues.append(Issue((field, "model.moe.num_experts"),
                            f"expert-parallel degree {degree} must divide model.moe.num_experts ({moe.num_experts})"))
    if cfg.dp_world_size % degree:
        issues.append(Issue((field, "launch.nproc_per_node"),
                            f"expert-parallel degree {degree} must divide the data-parallel size ({cfg.dp_world_size}): "
                            "its ranks are borrowed from data parallelism"))
    if tm.dp_config is None or tm.dp_config.name != "fsdp":
        issues.append(Issue((field, "train_module.dp_config.name"),
                            "expert parallelism composes with FSDP only: set train_module.dp_config.name = 'fsdp'"))
    for other in ("tp", "cp", "pp"):
        if getattr(tm, f"{other}_config") is not None:
            issues.append(Issue((field, f"train_module.{other}_config"),
                                f"expert parallelism with {other.upper()} is not supported yet: unset one of them"))
    return issues
