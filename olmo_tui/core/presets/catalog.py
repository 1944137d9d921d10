"""The preset catalog: every built-in and user preset with a one-line summary.

A broken user preset is listed with its error instead of breaking the list.

Summaries are cached in $XDG_CACHE_HOME/olmo-tui/preset-summaries.json, keyed by every preset
file's path, size and mtime and by the schema's source files (engine/config/*.py and this
core's describe/formatting/catalog): while none of them changed, the app's first screen and
`olmo-tui presets` read the summaries without importing pydantic and building the schema
(about a third of the app's start-up). Any change recomputes them all.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, List, Optional

from engine.config.errors import ConfigError
from engine.config.presets import PresetRef, list_presets, preset_data, read_toml

from .. import formatting
from ..config import describe

if TYPE_CHECKING:
    from engine.config import ExperimentConfig

CACHE_VERSION = 1
SCHEMA_SOURCES = [Path(__file__).resolve().parents[3] / "engine" / "config", Path(describe.__file__).resolve(),
                  Path(formatting.__file__).resolve(), Path(__file__).resolve()]


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
            f"{self.name:<14} {formatting.human_count(self.params or 0):>7} params  seq {self.seq_len:<5} "
            f"{formatting.human_count(self.tokens_per_step or 0):>6} tok/step  {self.gpus}  {self.parallelism}"
        )


def summarize(ref: PresetRef) -> PresetSummary:
    from engine.config import load_experiment

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


def cache_path() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "olmo-tui" / "preset-summaries.json"


def _stamp(path: Path) -> list:
    st = path.stat()
    return [str(path), st.st_size, st.st_mtime_ns]


def cache_key(refs: List[PresetRef]) -> str:
    """Changes when a preset file, the set of presets or the schema's source changes."""
    stamps = [[ref.name, ref.builtin, *_stamp(ref.path)] for ref in refs]
    for source in SCHEMA_SOURCES:
        files = sorted(source.glob("*.py")) if source.is_dir() else [source]
        stamps.extend(_stamp(file) for file in files)
    return hashlib.sha256(json.dumps([CACHE_VERSION, stamps]).encode()).hexdigest()


def _cached(key: str) -> Optional[List[PresetSummary]]:
    try:
        data = json.loads(cache_path().read_text())
        if data.get("key") != key:
            return None
        names = {f.name for f in fields(PresetSummary)}
        return [PresetSummary(**{k: v for k, v in row.items() if k in names}) for row in data["summaries"]]
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return None


def _store(key: str, summaries: List[PresetSummary]) -> None:
    from engine.atomic import write_json_atomic

    try:
        cache_path().parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(cache_path(), {"key": key, "summaries": [s.to_json() for s in summaries]}, indent=None)
    except OSError:  # an unwritable cache only costs speed
        pass


def all_summaries() -> List[PresetSummary]:
    refs = list_presets()
    try:
        key = cache_key(refs)
    except OSError:  # a preset vanished while listing: no caching this time
        return [summarize(ref) for ref in refs]
    summaries = _cached(key)
    if summaries is None:
        summaries = [summarize(ref) for ref in refs]
        _store(key, summaries)
    return summaries
