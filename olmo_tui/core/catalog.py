"""The preset catalog: every built-in and user preset with a one-line summary.

A broken user preset is listed with its error instead of breaking the list.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import List, Optional

from engine.config import ConfigError, ExperimentConfig, list_presets, load_experiment, preset_data
from engine.config.presets import PresetRef, read_toml

from . import describe


@dataclass
class PresetSummary:
    name: str
    builtin: bool
    path: str
    description: str
    family: Optional[str] = None
    params: Optional[int] = None
    non_embedding_params: Optional[int] = None
    layers: Optional[int] = None
    d_model: Optional[int] = None
    seq_len: Optional[int] = None
    tokens_per_step: Optional[int] = None
    duration: Optional[str] = None
    gpus: Optional[str] = None
    parallelism: Optional[str] = None
    data: Optional[str] = None
    error: Optional[str] = None

    def to_json(self) -> dict:
        return asdict(self)

    def one_line(self) -> str:
        if self.error:
            return f"{self.name:<14} INVALID: {self.error}"
        return (
            f"{self.name:<14} {describe.human_count(self.params or 0):>7} params  seq {self.seq_len:<5} "
            f"{describe.human_count(self.tokens_per_step or 0):>6} tok/step  {self.gpus}  {self.parallelism}"
        )


def summarize(ref: PresetRef) -> PresetSummary:
    try:
        description = str(read_toml(ref.path).get("description", ""))
        cfg = load_experiment(preset_data(ref.name))
    except ConfigError as exc:
        return PresetSummary(ref.name, ref.builtin, str(ref.path), "", error=str(exc).splitlines()[0])
    return summary_of(cfg, ref, description)


def summary_of(cfg: ExperimentConfig, ref: PresetRef, description: str = "") -> PresetSummary:
    model = cfg.model
    return PresetSummary(
        name=ref.name,
        builtin=ref.builtin,
        path=str(ref.path),
        description=description,
        family=model.family,
        params=model.num_params(),
        non_embedding_params=model.num_non_embedding_params(),
        layers=model.n_layers,
        d_model=model.d_model,
        seq_len=cfg.dataset.sequence_length,
        tokens_per_step=cfg.tokens_per_step,
        duration=str(cfg.trainer.max_duration),
        gpus=describe.gpus(cfg),
        parallelism=describe.parallelism(cfg),
        data=describe.data(cfg),
    )


def all_summaries() -> List[PresetSummary]:
    return [summarize(ref) for ref in list_presets()]
