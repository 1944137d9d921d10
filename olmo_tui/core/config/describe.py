"""Short human descriptions of a config: the words shown in preset lists and detail panes."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..formatting import human_count

if TYPE_CHECKING:  # only annotations: describing a preset's numbers must not load the schema
    from engine.config import ExperimentConfig


def parallelism(cfg: ExperimentConfig) -> str:
    """E.g. 'FSDP bf16', 'HSDP 32-way shard', 'DDP', '+ TP2', '+ AC full', '+ compile'."""
    tm = cfg.train_module
    parts = []
    dp = tm.dp_config
    if dp is not None:
        text = dp.name.upper()
        if dp.name == "hsdp" and dp.shard_degree:
            text += f" {dp.shard_degree}-way shard"
        if dp.param_dtype is not None:
            text += f" {dp.param_dtype.value.replace('bfloat', 'bf').replace('float', 'fp')}"
        parts.append(text)
    elif cfg.launch.world_size > 1:
        parts.append("DDP")
    else:
        parts.append("single device")
    if tm.tp_config:
        parts.append(f"TP{tm.tp_config.degree}")
    if tm.ep_config:
        parts.append(f"EP{tm.ep_config.degree}")
    if tm.cp_config:
        parts.append(f"CP{tm.cp_config.degree} Ulysses")
    if tm.pp_config:
        parts.append(f"PP{tm.pp_config.degree} {tm.pp_config.schedule}")
    if tm.ac_config:
        parts.append(f"AC {tm.ac_config.mode}")
    if tm.compile_model:
        parts.append("compile")
    return " + ".join(parts)


def gpus(cfg: ExperimentConfig) -> str:
    launch = cfg.launch
    device = launch.accelerator or "CPU"
    if launch.backend == "beaker" and launch.beaker:
        return f"{launch.beaker.nodes} x {launch.beaker.gpus} {device} (Beaker)"
    if launch.backend == "slurm" and launch.slurm:
        return f"{launch.slurm.nodes} node(s) x {launch.nproc_per_node} {device} (SLURM)"
    return f"{launch.nproc_per_node} x {device}"


def data(cfg: ExperimentConfig) -> str:
    ds = cfg.dataset
    tok = ds.tokenizer.name or ds.tokenizer.kind
    if ds.kind == "embedded":
        return f"embedded corpus ({tok} tokenizer)"
    if ds.kind == "synthetic":
        return f"synthetic {human_count(ds.synthetic_tokens)} tokens"
    if ds.kind != "numpy":  # an extension's data source
        return f"data source {ds.kind} ({tok})"
    first = ds.paths[0] if ds.paths else "?"
    more = f" + {len(ds.paths) - 1} more" if len(ds.paths) > 1 else ""
    return f"{first}{more} ({tok})"
