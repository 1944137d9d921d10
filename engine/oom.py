"""What to do when a run dies of CUDA out-of-memory: one block of advice naming the current values.

The order is the researcher guide's (docs/GUIDE.md, "Troubleshooting: out of memory and hangs"),
cheapest change first:

1. a smaller micro-batch: gradient accumulation keeps the global batch, so the optimisation is
   unchanged and only throughput drops;
2. activation checkpointing, with a memory budget when the model is compiled (recompute only
   what does not fit) or whole blocks otherwise;
3. context parallelism once the micro-batch is a single sequence (one instance does not fit: split
   each sequence over ranks);
4. more sharding: FSDP over all ranks instead of DDP replicas or HSDP groups, then more GPUs or
   tensor parallelism.

Torch is imported only to recognise the error; the advice itself is plain text from the config.
"""

from __future__ import annotations

from typing import List, Optional

from engine.config import ExperimentConfig
from engine.config.parallel import mesh_text

RULE = "=" * 78


def is_out_of_memory(exc: BaseException) -> bool:
    """torch.OutOfMemoryError (CUDA's allocator ran out), directly or as the cause of `exc`."""
    try:
        import torch
    except ImportError:  # pragma: no cover - the engine always has torch
        return False
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, torch.OutOfMemoryError):
            return True
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return False


def smaller_microbatch(cfg: ExperimentConfig) -> Optional[int]:
    """The largest valid micro-batch at most half the current one, or None if there is none.

    Valid: a multiple of the sequence length that divides the global batch per data-parallel rank
    (so gradient accumulation still adds up to exactly the same global batch)."""
    seq = cfg.dataset.sequence_length
    per_rank = cfg.data_loader.global_batch_size // cfg.dp_world_size
    current = cfg.train_module.rank_microbatch_size
    for sequences in range(current // 2 // seq, 0, -1):
        tokens = sequences * seq
        if per_rank % tokens == 0:
            return tokens
    return None


def _describe_ac(cfg: ExperimentConfig) -> str:
    ac = cfg.train_module.ac_config
    if ac is None:
        return "off"
    detail = {"selected_blocks": f", block_interval={ac.block_interval}",
              "selected_modules": f", modules={ac.modules}",
              "budget": f", activation_memory_budget={ac.activation_memory_budget}"}.get(ac.mode, "")
    return f"mode={ac.mode}{detail}"


def _describe_dp(cfg: ExperimentConfig) -> str:
    dp = cfg.train_module.dp_config
    if dp is None:
        return "unset (" + ("DDP replicas" if cfg.launch.world_size > 1 else "a single process") + ")"
    parts = [f"name={dp.name}", f"param_dtype={dp.param_dtype.value if dp.param_dtype else 'model.dtype'}"]
    if dp.name == "hsdp":
        parts.append(f"shard_degree={dp.shard_degree or 'GPUs per node'}")
    return ", ".join(parts)


def _microbatch_step(cfg: ExperimentConfig) -> str:
    current = cfg.train_module.rank_microbatch_size
    seq = cfg.dataset.sequence_length
    smaller = smaller_microbatch(cfg)
    if smaller is None:
        return (f"Micro-batch: already {current // seq} sequence(s) of {seq} tokens per rank; go on to step 2 "
                "(step 3 splits the sequence itself).")
    return (f"Reduce the micro-batch: --train_module.rank_microbatch_size={smaller} "
            f"({smaller // seq} sequences instead of {current // seq}). Gradient accumulation keeps "
            f"the global batch of {cfg.data_loader.global_batch_size:,} tokens, so the optimisation "
            "is unchanged; only tokens/s drop.")


def _ac_step(cfg: ExperimentConfig) -> str:
    ac = cfg.train_module.ac_config
    compiled = cfg.train_module.compile_model
    if ac is None:
        if compiled:
            return ("Activation checkpointing with a budget: --train_module.ac_config.mode=budget "
                    "--train_module.ac_config.activation_memory_budget=0.5 (lower = recompute more, "
                    "use less memory).")
        return ("Activation checkpointing with a budget: --train_module.compile_model=true "
                "--train_module.ac_config.mode=budget --train_module.ac_config.activation_memory_budget=0.5; "
                "without compile: --train_module.ac_config.mode=full (recompute every block).")
    if ac.mode == "budget" and ac.activation_memory_budget:
        lower = round(ac.activation_memory_budget / 2, 3)
        return (f"Activation checkpointing: lower the budget, --train_module.ac_config.activation_memory_budget={lower} "
                "(0 = recompute everything).")
    if ac.mode in ("selected_blocks", "selected_modules"):
        return "Activation checkpointing: checkpoint more, --train_module.ac_config.mode=full."
    return "Activation checkpointing: already recomputing as much as it can; go on to step 3."


def _context_parallel_step(cfg: ExperimentConfig) -> str:
    """CP when one sequence per rank is all the micro-batch holds: each rank then keeps 1/cp of
    every sequence's activations (docs/GUIDE.md, "Scaling up: context and pipeline parallelism")."""
    seq = cfg.dataset.sequence_length
    cp = cfg.cp_degree
    if cfg.train_module.rank_microbatch_size > seq:
        return "Context parallelism: not yet; the micro-batch still holds several sequences (step 1 first)."
    degree = cp * 2
    heads = cfg.model.n_heads // cfg.tp_degree
    if heads % degree or cfg.model.kv_heads // cfg.tp_degree % degree:
        return (f"Context parallelism: Ulysses splits the heads and {heads} head(s) per rank do not divide "
                f"by {degree}; shorten dataset.sequence_length instead.")
    return (f"Context parallelism: --train_module.cp_config.degree={degree} splits each {seq:,}-token sequence "
            f"over {degree} ranks (activations per rank / {degree // cp}); needs {degree // cp}x the ranks "
            "for the same data-parallel size.")


def _sharding_step(cfg: ExperimentConfig) -> str:
    dp = cfg.train_module.dp_config
    world = cfg.launch.world_size
    tips: List[str] = []
    if world > 1 and (dp is None or dp.name == "ddp"):
        tips.append("shard parameters, gradients and optimizer state over all ranks: "
                    "--train_module.dp_config.name=fsdp")
    elif dp is not None and dp.name == "hsdp":
        tips.append("shard over all ranks instead of groups: --train_module.dp_config.name=fsdp")
    if dp is not None and dp.param_dtype is None and cfg.model.dtype.value == "float32":
        tips.append("gather parameters in bf16: --train_module.dp_config.param_dtype=bfloat16")
    moe, ep = cfg.model.moe, cfg.train_module.ep_config
    if moe is not None and ep is None and world > 1:
        tips.append(f"shard each MoE block's {moe.num_experts} experts over ranks (a rank then gathers only its "
                    "share of them): --train_module.ep_config.degree=N with N dividing the experts and the ranks, "
                    "and --train_module.dp_config.name=fsdp")
    if world == 1:
        tips.append("add GPUs (--launch.nproc_per_node, or more Beaker nodes) with "
                    "--train_module.dp_config.name=fsdp")
    elif _tensor_parallel_fits(cfg):
        tips.append(f"spread the state over more GPUs than the current {world}, or split each layer "
                    "with tensor parallelism (--train_module.tp_config.degree=2)")
    else:  # tied embeddings (qwen3-0.6b, gemma3-1b) or a single KV head cannot be split by TP
        tips.append(f"spread the state over more GPUs than the current {world} (tensor parallelism "
                    "does not apply: tied embeddings or KV heads not divisible by 2)")
    return "More sharding: " + "; ".join(tips) + "."


def _tensor_parallel_fits(cfg: ExperimentConfig) -> bool:
    m = cfg.model
    return not m.tie_embeddings and m.n_heads % 2 == 0 and m.kv_heads % 2 == 0


def oom_advice(cfg: ExperimentConfig, exc: Optional[BaseException] = None, step: Optional[int] = None) -> str:
    """The block printed when a run ends out of memory (no trailing newline)."""
    where = f" at step {step}" if step is not None else ""
    first_line = str(exc).strip().splitlines()[0] if exc is not None and str(exc).strip() else ""
    tm = cfg.train_module
    lines = [
        RULE,
        f"Out of GPU memory{where}." + (f" {first_line}" if first_line else ""),
        "Current values:",
        f"  train_module.rank_microbatch_size = {tm.rank_microbatch_size} tokens "
        f"({tm.rank_microbatch_size // cfg.dataset.sequence_length} x {cfg.dataset.sequence_length})",
        f"  train_module.ac_config            = {_describe_ac(cfg)}",
        f"  train_module.dp_config            = {_describe_dp(cfg)}",
        f"  ranks (launch.world_size)         = {cfg.launch.world_size} (mesh {mesh_text(cfg)})",
        "Try, in this order:",
        f"  1. {_microbatch_step(cfg)}",
        f"  2. {_ac_step(cfg)}",
        f"  3. {_context_parallel_step(cfg)}",
        f"  4. {_sharding_step(cfg)}",
        "docs/GUIDE.md, \"Troubleshooting: out of memory and hangs\", explains each step.",
        RULE,
    ]
    return "\n".join(lines)
