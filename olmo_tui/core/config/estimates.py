"""Pre-flight estimates of a config: size, compute, batch, duration, GPU memory per device and
wall time, plus the memory remedies in the guide's order. Torch-free: pure arithmetic on the
config, so the app can recompute it on every keystroke.

Memory per device (bytes), derived here rather than measured:

    weights    = P_dev x bytes(model.dtype)                       P_dev = params / TP / shard
    grads      = P_dev x bytes(model.dtype)                       (grads live in the master dtype)
    optimizer  = P_dev x 2 x bytes(model.dtype)                   (Adam: exp_avg and exp_avg_sq)
    gathered   = 2 x block_params / TP x bytes(compute)  if sharded (FSDP all-gathers one block
                 and prefetches the next; both unsharded copies are alive in backward)
    activations= T x [ L_kept x A_block / TP + L_ckpt x d + A_block / TP + d ] x bytes(compute)
                 + loss
    loss       = min(T x V, 2^28) x (bytes(compute) + 4)      (one chunk of logits + fp32 temporaries:
                 + T x d x bytes(compute) + V x d x 4          the engine's chunked loss), stored grads
                                                               of hidden states and fp32 head weight;
                 under TP instead T x V / TP x (bytes(compute) + 4) (all logits + their fp32 copy)
    overhead   = 1 GiB (CUDA context, NCCL buffers, allocator slack)

MoE blocks (model.moe): the router, experts and shared experts are not split by TP; a block's
gathered copy holds only the rank's 1 / ep of its experts; A_block of an MoE block replaces the
MLP's 4 h by 2 E (router logits, probabilities) + top_k x (2 d + 4 h_expert) + 4 h_expert per
shared expert.

with T = tokens per micro-batch per rank (`rank_microbatch_size`), shard = the data-parallel
ranks a parameter is split over (FSDP: all DP ranks; HSDP: the shard group; DDP/none: 1),
compute = FSDP param_dtype, else autocast dtype, else model.dtype. A_block is the tensors one
transformer block keeps per token for backward (SDPA/flash attention, so no T x T scores):

    A_block = 4d (two norms' inputs and outputs; 8d for Gemma-3's four) + q + 2 kv (q, k, v after
              RoPE) + q (attention out) + 4 h (gated MLP: gate, up, act(gate), act(gate)*up)
              [+ q + kv for QK-norm inputs]

(q = heads x head_dim, kv = kv_heads x head_dim; head_dim may differ from d / heads.)

Checkpointed blocks keep only their input (d per token) plus, while one is recomputed, one
block's full set (the last `A_block` term). Modes: full = all blocks; selected_blocks = every
block_interval-th; budget f = kept share f of the non-checkpointed activations (torch's
min-cut solver keeps about that fraction); selected_modules is counted as no checkpointing
(an upper bound, flagged). Compare with measured peak memory in docs/BENCHMARKS.md.

Context parallelism (cp ranks share each sequence): T = rank_microbatch_size / cp, and FSDP
shards over dp x cp. Ulysses' all-to-alls trade sequence for heads, so the per-token attention
tensors are the same count. Pipeline parallelism: the estimate is the worst pp rank's, which
holds its stages' blocks (+ the embeddings on the first, the norm and head on the last) and the
activations its schedule keeps in flight (engine/config/parallel.py, pipeline_ranks: L_kept and
L_ckpt scaled by in-flight blocks / n_layers); the last rank computes the loss from whole logits
(T x V x (bytes(compute) + 4), times the micro-batches for GPipe).
"""

from __future__ import annotations

import copy
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional

from engine.config import DType, ExperimentConfig, validate_experiment
from engine.config.parallel import mesh_text, pipeline_microbatches, pipeline_ranks
from engine.hardware import BY_NAME, Accelerator
from engine.run_dir import METRICS_FILE

from ..formatting import GIB

OVERHEAD_BYTES = 1 * GIB
# engine/nn/fused_loss.py's CHUNK_ELEMENTS (tests/core/config/test_estimates.py checks they agree).
LOSS_CHUNK_ELEMENTS = 1 << 28
DEFAULT_MFU = 40.0  # percent; stated in the panel whenever no earlier run of the preset measured one
# Tokens/s of train_module.float8 over bf16, measured for olmo2-1b seq 4096 on an H200
# (docs/BENCHMARKS.md, "Engine speed"): the wall-time estimate divides by it. MFU stays
# relative to the bf16 peak, as the speed monitor reports it.
FLOAT8_SPEEDUP = {"off": 1.0, "tensorwise": 1.20, "rowwise": 1.0}


@dataclass
class MemoryEstimate:
    weights: float
    grads: float
    optimizer: float
    gathered: float
    activations: float
    overhead: float
    approximate: bool = False  # selected_modules AC: counted as no checkpointing

    @property
    def total(self) -> float:
        return self.weights + self.grads + self.optimizer + self.gathered + self.activations + self.overhead

    def parts(self) -> Dict[str, float]:
        return {"weights": self.weights, "grads": self.grads, "optimizer": self.optimizer,
                "gathered": self.gathered, "activations": self.activations, "overhead": self.overhead}


@dataclass
class Remedy:
    """One way to fit in memory: the overrides that apply it and the estimate it would give."""

    title: str
    changes: Dict[str, Any]  # dotted path -> raw value (None unsets)
    total_bytes: float
    fits: bool


@dataclass
class Estimates:
    params: int
    non_embedding_params: int
    flops_per_token: int  # training FLOPs of the active weights (an MoE's router + top_k experts)
    tokens_per_step: int
    steps_to_stop: Optional[int]  # hard stop, else max duration; None for epochs
    stop_label: str  # "hard stop" or "max duration"
    max_duration_steps: Optional[int]
    memory: MemoryEstimate
    accelerator: Optional[Accelerator]
    world_size: int
    mfu_percent: float
    mfu_source: str  # "default" or "best of N earlier runs"
    wall_seconds: Optional[float]
    remedies: List[Remedy] = field(default_factory=list)
    active_params: Optional[int] = None  # MoE: the parameters one token uses; None for a dense model
    sources: List[Any] = field(default_factory=list)  # a mixture: engine.data.mixture.SourcePlan each
    sources_error: Optional[str] = None  # why the mixture could not be planned (a missing file)
    mesh: str = ""  # 'dp2 x tp1 x cp2 x pp1' (engine/config/parallel.py)

    @property
    def over_memory(self) -> bool:
        return self.accelerator is not None and self.memory.total > self.accelerator.memory_gib * GIB


def _bytes(dtype: Optional[DType]) -> int:
    return dtype.num_bytes if dtype is not None else 4


def compute_dtype(cfg: ExperimentConfig) -> DType:
    tm = cfg.train_module
    if tm.dp_config is not None and tm.dp_config.param_dtype is not None:
        return tm.dp_config.param_dtype
    if tm.autocast_dtype is not None and cfg.launch.accelerator is not None:
        return tm.autocast_dtype  # autocast applies on GPU only
    return cfg.model.dtype


def shard_factor(cfg: ExperimentConfig) -> int:
    """Data-parallel ranks each parameter (and its grad and optimizer state) is split over."""
    dp = cfg.train_module.dp_config
    cp = cfg.cp_degree  # FSDP shards over dp x cp (the cp ranks hold the same parameters)
    if dp is None or dp.name == "ddp" or cfg.dp_world_size * cp <= 1:
        return 1
    if dp.name == "hsdp":
        group = dp.shard_degree or cfg.launch.nproc_per_node
        return max(min(group, cfg.dp_world_size), 1) * cp
    return cfg.dp_world_size * cp


def block_activation_elements(cfg: ExperimentConfig, index: int = 0) -> int:
    """A_block: elements block `index` keeps per token for backward (see module docstring)."""
    m = cfg.model
    d, q, kv, h = m.d_model, m.q_dim, m.kv_dim, m.mlp_hidden
    norms = 8 * d if m.gemma_blocks else 4 * d
    feed_forward = 4 * h
    if m.is_moe_layer(index):
        moe = m.moe
        # router logits and probabilities (E each), then per routed copy of the token its input
        # and weighted output (2d) and the expert's gate, up, act(gate), act(gate)*up (4 h); the
        # shared experts keep 4 h each
        feed_forward = (2 * moe.num_experts + moe.top_k * (2 * d + 4 * moe.hidden_size)
                        + 4 * moe.num_shared_experts * moe.hidden_size)
    elements = norms + (q + 2 * kv) + q + feed_forward
    if m.qk_norm:
        elements += q + kv
    return elements


def moe_block_params(cfg: ExperimentConfig, index: int) -> tuple:
    """(routed experts' weights, router + shared experts' weights) of block `index` (0s if dense)."""
    m = cfg.model
    if not m.is_moe_layer(index):
        return 0, 0
    moe = m.moe
    expert = 3 * m.d_model * moe.hidden_size
    return moe.num_experts * expert, m.d_model * moe.num_experts + moe.num_shared_experts * expert


def loss_bytes(cfg: ExperimentConfig, tokens: int, compute: int) -> float:
    """Output head + cross-entropy. The engine's fused loss (engine/nn/fused_loss.py) never
    holds all logits: one chunk of ~LOSS_CHUNK_ELEMENTS logits and its fp32 temporaries at a
    time, plus the stored gradients of the hidden states (compute dtype) and of the head weight
    (fp32). Under tensor parallelism the head is a DTensor and the plain loss keeps every logit
    and its fp32 copy."""
    m = cfg.model
    if cfg.tp_degree > 1:
        return tokens * m.vocab_size / cfg.tp_degree * (compute + 4)
    if cfg.pp_degree > 1:  # the last stage's loss takes whole logits (engine/train_module/pipeline.py)
        held = pipeline_microbatches(cfg) if cfg.train_module.pp_config.schedule == "gpipe" else 1
        return held * tokens * m.vocab_size * (compute + 4)
    chunk = min(tokens * m.vocab_size, LOSS_CHUNK_ELEMENTS)
    return chunk * (compute + 4) + tokens * m.d_model * compute + m.vocab_size * m.d_model * 4


def memory_estimate(cfg: ExperimentConfig) -> MemoryEstimate:
    """The worst rank's memory (pipeline ranks differ; see the module docstring)."""
    return max((_rank_memory(cfg, *rank) for rank in pipeline_ranks(cfg)), key=lambda est: est.total)


def _rank_memory(cfg: ExperimentConfig, held: int, first: bool, last: bool, in_flight: float) -> MemoryEstimate:
    m, tm = cfg.model, cfg.train_module
    tp = cfg.tp_degree
    shard = shard_factor(cfg)
    master = _bytes(m.dtype)
    compute = _bytes(compute_dtype(cfg))
    # MoE weights are not split by TP (every TP rank runs the whole MoE); with expert parallelism
    # FSDP shards the experts over dp_mod_ep x ep = all dp ranks, like the rest.
    moe = [moe_block_params(cfg, i) for i in range(m.n_layers)]
    unsplit = sum(experts + other for experts, other in moe)
    if cfg.pp_degree == 1:
        p_dev = (m.num_params() - unsplit) / tp / shard + unsplit / shard
    else:  # (no MoE under PP) this rank's blocks, the embeddings (first stage), final norm and head (last)
        params = held * (m.block_matmul_params(0) + m.block_norm_params()) + first * m.vocab_size * m.d_model \
            + last * (m.vocab_size + 1) * m.d_model
        p_dev = params / tp / shard
    weights = p_dev * master
    grads = p_dev * master
    optimizer = p_dev * 2 * master
    # FSDP gathers one block (and prefetches the next); of an MoE block's experts, a rank gathers
    # only the 1 / ep it holds
    ep = tm.ep_config.degree if tm.ep_config else 1
    block_params = max(m.block_matmul_params(i) + m.block_norm_params() - experts - other
                       for i, (experts, other) in enumerate(moe)) / tp
    block_params += max(experts / ep + other for experts, other in moe)
    gathered = 2 * block_params * compute if shard > 1 else 0.0

    tokens = tm.rank_microbatch_size / cfg.cp_degree  # a cp rank holds 1/cp of each sequence
    layers = m.n_layers
    # dense blocks' activations split over TP; MoE blocks' counted unsplit (an upper bound)
    a_layers = [block_activation_elements(cfg, i) / (1 if m.is_moe_layer(i) else tp) for i in range(layers)]
    a_block = sum(a_layers) / layers
    approximate = False
    ac = tm.ac_config
    if ac is None:
        kept, ckpt = layers, 0
    elif ac.mode == "full":
        kept, ckpt = 0, layers
    elif ac.mode == "selected_blocks":
        ckpt = layers // (ac.block_interval or 1)
        kept = layers - ckpt
    elif ac.mode == "budget":
        budget = ac.activation_memory_budget if ac.activation_memory_budget is not None else 1.0
        kept, ckpt = layers * budget, layers * (1 - budget)
    else:  # selected_modules: which modules match is only known to the engine
        kept, ckpt, approximate = layers, 0, True
    recompute = max(a_layers) if ckpt else 0.0
    flight = in_flight / layers  # 1 without PP: one micro-batch through every block
    per_token = (kept * a_block + ckpt * m.d_model) * flight + recompute + m.d_model  # + embedding output
    activations = tokens * per_token * compute + (loss_bytes(cfg, tokens, compute) if last else 0.0)
    return MemoryEstimate(weights, grads, optimizer, gathered, activations, OVERHEAD_BYTES, approximate)


# ---- remedies ----------------------------------------------------------------------------

def _with_changes(cfg: ExperimentConfig, changes: Dict[str, Any]) -> Optional[ExperimentConfig]:
    from .form_model import set_path

    data = copy.deepcopy(cfg.model_dump(mode="json"))
    for path, value in changes.items():
        set_path(data, path, value)
    candidate, _ = validate_experiment(data)
    return candidate


def _remedy(cfg: ExperimentConfig, title: str, changes: Dict[str, Any], limit: float) -> Optional[Remedy]:
    candidate = _with_changes(cfg, changes)
    if candidate is None:
        return None
    total = memory_estimate(candidate).total
    return Remedy(title, changes, total, total <= limit)


def _smaller_microbatch(cfg: ExperimentConfig, limit: float) -> Optional[Remedy]:
    seq = cfg.dataset.sequence_length
    current = cfg.train_module.rank_microbatch_size
    best = None
    size = current // 2
    while size >= seq:
        if size % seq == 0:
            remedy = _remedy(cfg, f"micro-batch {size:,} tokens",
                             {"train_module.rank_microbatch_size": size}, limit)
            if remedy is not None:
                best = remedy
                if remedy.fits:
                    break
        size //= 2
    return best


def _ac_budget(cfg: ExperimentConfig, limit: float) -> Optional[Remedy]:
    """The largest activation budget (least recompute) that fits, in steps of 0.05."""
    ac = cfg.train_module.ac_config
    if ac is not None and ac.mode == "full":
        return None
    best = None
    for step in range(19, -1, -1):
        budget = round(step * 0.05, 2)
        changes = {"train_module.ac_config": {"mode": "budget", "activation_memory_budget": budget},
                   "train_module.compile_model": True}
        remedy = _remedy(cfg, f"AC budget {budget:g}", changes, limit)
        if remedy is not None:
            best = remedy
            if remedy.fits:
                break
    return best


def _context_parallel(cfg: ExperimentConfig, limit: float) -> Optional[Remedy]:
    """When one sequence per rank is already too much: split each sequence over more ranks
    (the smallest CP degree that fits). Offered only at a micro-batch of one sequence, where a
    smaller micro-batch has nothing left to give."""
    if cfg.train_module.rank_microbatch_size > cfg.dataset.sequence_length:
        return None
    return _doubled_degree(cfg, "CP", "train_module.cp_config", cfg.cp_degree, limit)


def _sharding(cfg: ExperimentConfig, limit: float) -> Optional[Remedy]:
    dp = cfg.train_module.dp_config
    if cfg.dp_world_size <= 1 or (dp is not None and dp.name == "fsdp"):
        return None
    section = dp.model_dump(mode="json") if dp is not None else {"name": "fsdp", "param_dtype": "bfloat16"}
    section.update(name="fsdp", shard_degree=None)
    title = f"FSDP over {cfg.dp_world_size} ranks"
    return _remedy(cfg, title, {"train_module.dp_config": section}, limit)


def _tensor_parallel(cfg: ExperimentConfig, limit: float) -> Optional[Remedy]:
    return _doubled_degree(cfg, "TP", "train_module.tp_config", cfg.tp_degree, limit)


def _doubled_degree(cfg: ExperimentConfig, name: str, section: str, current: int, limit: float) -> Optional[Remedy]:
    """The smallest doubling of a parallel degree (up to the world size) that fits, else the
    largest that applies."""
    best = None
    degree = current * 2
    while degree <= cfg.launch.world_size:
        remedy = _remedy(cfg, f"{name} degree {degree}", {section: {"degree": degree}}, limit)
        if remedy is not None:
            best = remedy
            if remedy.fits:
                break
        degree *= 2
    return best


def expert_parallel_degree(cfg: ExperimentConfig) -> Optional[int]:
    """The largest expert-parallel degree an MoE config could take (dividing its experts and its
    data-parallel ranks), or None when it has one already, is dense, or has one rank."""
    moe, tm = cfg.model.moe, cfg.train_module
    if moe is None or tm.ep_config is not None or tm.tp_config or tm.cp_config or tm.pp_config:
        return None
    degrees = [n for n in range(2, cfg.dp_world_size + 1) if moe.num_experts % n == 0 and cfg.dp_world_size % n == 0]
    return degrees[-1] if degrees else None


def _expert_parallel(cfg: ExperimentConfig, limit: float) -> Optional[Remedy]:
    degree = expert_parallel_degree(cfg)
    if degree is None:
        return None
    dp = cfg.train_module.dp_config
    section = dp.model_dump(mode="json") if dp is not None else {"param_dtype": "bfloat16"}
    section.update(name="fsdp", shard_degree=None)
    return _remedy(cfg, f"experts over {degree} ranks (EP)", {"train_module.ep_config": {"degree": degree},
                                                               "train_module.dp_config": section}, limit)


def remedies(cfg: ExperimentConfig, limit_bytes: float) -> List[Remedy]:
    """The guide's order: smaller micro-batch, AC with a budget, context parallelism (once the
    micro-batch is one sequence), FSDP/HSDP sharding, expert parallelism (MoE), TP last."""
    found = [r(cfg, limit_bytes) for r in (_smaller_microbatch, _ac_budget, _context_parallel, _sharding,
                                           _expert_parallel, _tensor_parallel)]
    return [remedy for remedy in found if remedy is not None]


# ---- MFU from earlier runs and wall time --------------------------------------------------

def run_dirs_for_preset(preset: str) -> List[Path]:
    """Run directories of earlier runs of `preset`, from the run registry (when it exists)."""
    from ..runs import registry

    db = registry.state_dir() / "runs.db"
    if not db.exists():
        return []  # never launched anything: do not create a registry just to look
    reg = registry.Registry(db)
    try:
        runs = reg.all()
    except Exception:  # a registry being migrated or locked: estimates fall back to the default
        return []
    finally:
        reg.close()
    return [Path(run.run_dir) for run in runs if run.preset == preset and run.run_dir]


def run_median_mfu(run_dir: Path) -> Optional[float]:
    """Median MFU (percent) over a run's metrics.jsonl; None if it reported none."""
    values = []
    try:
        with open(run_dir / METRICS_FILE) as f:
            for line in f:
                try:
                    mfu = json.loads(line).get("mfu")
                except ValueError:
                    continue  # a line being written right now
                if isinstance(mfu, (int, float)) and math.isfinite(mfu) and mfu > 0:
                    values.append(float(mfu))
    except OSError:
        return None
    if not values:
        return None
    values.sort()  # median without importing statistics (45 ms of start-up)
    middle = len(values) // 2
    return values[middle] if len(values) % 2 else (values[middle - 1] + values[middle]) / 2


def best_mfu(run_dirs: Iterable[Path]) -> Optional[tuple]:
    """(best median MFU in percent, number of runs that reported one), or None."""
    medians = [m for m in (run_median_mfu(Path(d)) for d in run_dirs) if m is not None]
    return (max(medians), len(medians)) if medians else None


def estimate(cfg: ExperimentConfig, measured_mfu: Optional[tuple] = None) -> Estimates:
    m = cfg.model
    seq = cfg.dataset.sequence_length
    flops = m.num_flops_per_token(seq)
    stop = cfg.trainer.hard_stop or cfg.trainer.max_duration
    steps = cfg.steps_for(stop)
    accelerator = BY_NAME.get(cfg.launch.accelerator) if cfg.launch.accelerator else None
    if measured_mfu:
        mfu, source = measured_mfu[0], f"best of {measured_mfu[1]} earlier run(s)"
    else:
        mfu, source = DEFAULT_MFU, "default"
    wall = None
    if accelerator is not None and steps is not None:
        total_flops = flops * cfg.tokens_per_step * steps
        wall = total_flops / (cfg.launch.world_size * accelerator.peak_bf16_flops * mfu / 100)
        wall /= FLOAT8_SPEEDUP[cfg.train_module.float8]
    memory = memory_estimate(cfg)
    result = Estimates(
        params=m.num_params(), non_embedding_params=m.num_non_embedding_params(), flops_per_token=flops,
        tokens_per_step=cfg.tokens_per_step, steps_to_stop=steps,
        stop_label="hard stop" if cfg.trainer.hard_stop else "max duration",
        max_duration_steps=cfg.steps_for(cfg.trainer.max_duration), memory=memory,
        accelerator=accelerator, world_size=cfg.launch.world_size, mfu_percent=mfu, mfu_source=source,
        wall_seconds=wall, active_params=m.num_active_params() if m.moe is not None else None,
        mesh=mesh_text(cfg),
    )
    if result.over_memory:
        result.remedies = remedies(cfg, accelerator.memory_gib * GIB)
    if cfg.dataset.sources and steps is not None:
        result.sources, result.sources_error = mixture_estimate(cfg)
    return result


def mixture_estimate(cfg: ExperimentConfig) -> tuple:
    """(per-source plans, None) or ([], the data error): tokens and epochs of each source over
    the planned run, from file sizes and manifests (engine.data.mixture.quick_plan)."""
    from engine.data.mixture import quick_plan
    from engine.errors import UserError

    try:
        return quick_plan(cfg), None
    except UserError as exc:
        return [], str(exc)
