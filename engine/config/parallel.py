"""The device mesh a config asks for, and the rules between its parallelism fields (torch-free).

Every rank sits at one point of the mesh dp x tp x cp x pp (engine/distributed/mesh.py lays it
out as pp, dp, cp, tp, outermost first). dp is what is left of the world size:

    world = dp x tp x cp x pp

dp ranks see different batches; cp ranks see different slices of the same sequences; tp ranks
hold different slices of each layer; pp ranks hold different layers. Gradients are averaged
over dp x cp (both saw different tokens), so FSDP shards over dp x cp too.
"""

from __future__ import annotations

from typing import List, Tuple

from .errors import Issue

# Functions take the ExperimentConfig (experiment.py imports this module, so no import back).

MESH_DIMS = ("dp", "tp", "cp", "pp")


def degrees(cfg) -> dict:
    """{"tp": n, "cp": n, "pp": n} (1 when off)."""
    tm = cfg.train_module
    return {name: (getattr(tm, f"{name}_config").degree if getattr(tm, f"{name}_config") else 1)
            for name in ("tp", "cp", "pp")}


def mesh_dims(cfg) -> List[Tuple[str, int]]:
    """[("dp", n), ("tp", n), ("cp", n), ("pp", n)] for this config's world size."""
    d = degrees(cfg)
    model_ranks = d["tp"] * d["cp"] * d["pp"]
    return [("dp", max(cfg.launch.world_size // model_ranks, 1))] + [(k, d[k]) for k in ("tp", "cp", "pp")]


def mesh_text(cfg) -> str:
    """'dp2 x tp1 x cp2 x pp1': the mesh as the editor and the dry-run show it; expert
    parallelism, a split of dp, shows inside it: 'dp4(ep2) x tp1 x cp1 x pp1'."""
    ep = getattr(cfg.train_module, "ep_config", None)
    return " x ".join(f"{k}{n}" + (f"(ep{ep.degree})" if k == "dp" and ep else "") for k, n in mesh_dims(cfg))


def pipeline_microbatches(cfg) -> int:
    """Micro-batches one pipeline streams per step: the rank's batch over the micro-batch size."""
    per_rank = cfg.data_loader.global_batch_size // max(cfg.dp_world_size, 1)
    return max(per_rank // cfg.train_module.rank_microbatch_size, 1)


def stage_layers(n_layers: int, num_stages: int) -> List[range]:
    """The blocks of each pipeline stage: even, the first stages one more when they do not divide."""
    base, extra = divmod(n_layers, num_stages)
    out, start = [], 0
    for stage in range(num_stages):
        size = base + (1 if stage < extra else 0)
        out.append(range(start, start + size))
        start += size
    return out


def pipeline_ranks(cfg) -> List[Tuple[int, bool, bool, float]]:
    """Per pp rank: (blocks it holds, holds the embeddings, holds the head, block activations in
    flight), the last in units of one block's activations for one micro-batch.

    In flight at the peak (the schedules' warm-up, torch.distributed.pipelining): GPipe keeps every
    micro-batch's; 1F1B keeps pp - r micro-batches on rank r (so rank 0 holds as many blocks'
    activations as one process without PP); the interleaved schedules run (v - 1) x round + f x
    (pp - 1 - r) stage forwards ahead (f = 2 for interleaved 1F1B, 1 for zero-bubble), each of a
    stage of 1/v of the rank's blocks. Without PP: one micro-batch through every block.
    """
    n_layers, pp = cfg.model.n_layers, cfg.train_module.pp_config
    if pp is None:
        return [(n_layers, True, True, float(n_layers))]
    micro = pipeline_microbatches(cfg)
    layers = stage_layers(n_layers, pp.num_stages)
    out = []
    for rank in range(pp.degree):
        stages = [rank + k * pp.degree for k in range(pp.local_stages)]
        held = sum(len(layers[s]) for s in stages)
        if pp.schedule == "gpipe":
            in_flight = float(micro * held)
        elif pp.schedule == "1F1B":
            in_flight = float(min(pp.degree - rank, micro) * held)
        else:
            per_round = micro // max(1, micro // pp.degree)
            ahead = (pp.local_stages - 1) * per_round + (2 if pp.schedule == "interleaved_1F1B" else 1) * (
                pp.degree - 1 - rank)
            in_flight = min(ahead + 1, micro * pp.local_stages) * held / pp.local_stages
        out.append((held, 0 in stages, pp.num_stages - 1 in stages, in_flight))
    return out


def parallelism_issues(cfg) -> List[Issue]:
    """Rules of the tp / cp / pp fields against the model, the batch and the world size."""
    issues: List[Issue] = []
    tm, model = cfg.train_module, cfg.model
    d = degrees(cfg)
    world = cfg.launch.world_size

    def add(paths: tuple, message: str) -> None:
        issues.append(Issue(paths, message))

    set_dims = [f"train_module.{k}_config.degree" for k in ("tp", "cp", "pp") if d[k] > 1]
    product = d["tp"] * d["cp"] * d["pp"]
    if set_dims and world % product:
        add(tuple(set_dims) + ("launch.nproc_per_node",),
            f"tp x cp x pp = {product} must divide the world size ({world})")

    if tm.cp_config:
        cp = tm.cp_config
        heads = [("n_heads", model.n_heads)] + ([("n_kv_heads", model.kv_heads)] if model.kv_heads != model.n_heads else [])
        for name, value in heads:
            per_tp = value // d["tp"]
            if per_tp % cp.degree:
                of_tp = f" / tp {d['tp']} = {per_tp}" if d["tp"] > 1 else ""
                add(("train_module.cp_config.degree", f"model.{name}"),
                    f"Ulysses context parallelism splits the heads: degree {cp.degree} must divide "
                    f"model.{name} ({value}{of_tp})")
        chunks = 2 * cp.degree if cp.load_balancer == "zig_zag" else cp.degree
        seq = cfg.dataset.sequence_length
        if seq % chunks:
            add(("train_module.cp_config.degree", "dataset.sequence_length"),
                f"sequence length {seq} must be divisible by {chunks} "
                f"({'2 x ' if cp.load_balancer == 'zig_zag' else ''}cp degree {cp.degree})")

    if tm.pp_config:
        pp = tm.pp_config
        if model.n_layers < pp.num_stages:
            add(("train_module.pp_config.degree", "model.n_layers"),
                f"{pp.num_stages} pipeline stages ({pp.degree} ranks x {pp.local_stages}) need at least as many "
                f"layers; model.n_layers is {model.n_layers}")
        if model.tie_embeddings:
            add(("train_module.pp_config.degree", "model.tie_embeddings"),
                "pipeline parallelism puts the embeddings and the LM head on different ranks: "
                "it needs model.tie_embeddings = false")
        if model.moe is not None:
            add(("train_module.pp_config", "model.moe"),
                "pipeline parallelism with a mixture-of-experts model is not supported yet: unset one of them")
        if cfg.trainer.callbacks.downstream_evaluator.enabled:
            add(("train_module.pp_config", "trainer.callbacks.downstream_evaluator.enabled"),
                "the downstream evaluator scores with the whole model, which no pipeline rank holds: "
                "disable it under pipeline parallelism")
        dp = tm.dp_config
        if cfg.dp_world_size > 1 and (dp is None or dp.name == "ddp"):
            add(("train_module.pp_config", "train_module.dp_config.name"),
                "pipeline parallelism composes with FSDP, not DDP: set train_module.dp_config.name = fsdp")
        for other in ("tp", "cp"):
            if d[other] > 1:
                add(("train_module.pp_config", f"train_module.{other}_config"),
                    f"pipeline parallelism with {other.upper()} is not supported yet: unset one of them")
        micro = pipeline_microbatches(cfg)
        where = ("train_module.pp_config.schedule", "train_module.rank_microbatch_size",
                 "data_loader.global_batch_size")
        if pp.schedule == "1F1B" and micro < pp.degree:
            add(where, f"schedule 1F1B needs at least {pp.degree} micro-batches per step (one per stage); "
                f"the batch gives {micro}: lower rank_microbatch_size or raise global_batch_size")
        if pp.interleaved:
            rounds = max(1, micro // pp.degree)
            if micro % rounds:
                add(where, f"schedule {pp.schedule} needs the {micro} micro-batches per step to be a "
                    f"multiple of {rounds} (micro-batches // pp degree)")
    return issues
