"""Engine checkpoints as the converter sees them: full (unsharded) model weights plus the config.

Reading works for any checkpoint the trainer writes, including one written by N FSDP ranks:
DCP stores each tensor's global shape in `.metadata`, so one process allocates full tensors and
`dcp.load` fills them from all ranks' shards (resharding N -> 1). Only the `model.*` entries are
read; the optimizer state is never touched.

Writing produces a model-only checkpoint in the trainer's layout (engine/checkpoint.py):
`model_and_optim/` holds `{"model": state_dict}` and `.complete.json` marks it complete, so
`trainer.load_path` accepts the directory directly. Its `config.toml` is a complete experiment
config (see engine/hf/finetune_config.py), which both the trainer (`--config`) and `to-hf` read.
"""

from __future__ import annotations

import json
import os
import time
import warnings
from pathlib import Path
from typing import Any, Dict

import torch
import torch.distributed.checkpoint as dcp
from torch.distributed.checkpoint.metadata import TensorStorageMetadata

from engine import checkpoint as ckpt
from engine.config import ModelConfig
from engine.errors import UserError
from engine.run_dir import CHECKPOINTS_DIR
from engine.nn.transformer import Transformer, build_model, clean_param_name

from .checkpoint_config import CONFIG_FILE, EngineCheckpoint, find_config, read_checkpoint_config  # noqa: F401  (re-exported)

_MODEL_PREFIX = "model."


def resolve_checkpoint(src: Path) -> Path:
    """A run dir (its checkpoints/ folder's newest), a save folder, a stepN or converted dir."""
    src = Path(src).expanduser()
    if not src.exists():
        raise UserError("SRC", f"{src} does not exist")
    if (src / CHECKPOINTS_DIR).is_dir() and ckpt.latest_checkpoint(src / CHECKPOINTS_DIR) is not None:
        return ckpt.latest_checkpoint(src / CHECKPOINTS_DIR)
    return ckpt.resolve_load_path(src, field="SRC")


def model_tensor_metadata(path: Path, field: str = "SRC") -> Dict[str, TensorStorageMetadata]:
    """Engine parameter name -> DCP metadata (global shape and dtype) of its saved tensor.
    `field` names the setting that pointed here in an error (convert's SRC, trainer.load_path)."""
    dcp_dir = path / ckpt.MODEL_AND_OPTIM if (path / ckpt.MODEL_AND_OPTIM).is_dir() else path
    try:
        metadata = dcp.FileSystemReader(str(dcp_dir)).read_metadata()
    except Exception as exc:  # a truncated or foreign .metadata file
        raise UserError(field, f"cannot read the checkpoint metadata in {dcp_dir}: {exc}") from None
    return {key[len(_MODEL_PREFIX):]: meta for key, meta in metadata.state_dict_metadata.items()
            if key.startswith(_MODEL_PREFIX) and isinstance(meta, TensorStorageMetadata)}


def load_model_weights(path: Path) -> Dict[str, torch.Tensor]:
    """Full tensors of the checkpoint's model (clean engine names), in their saved dtype."""
    metadata = model_tensor_metadata(path)
    state = {name: torch.empty(tuple(meta.size), dtype=meta.properties.dtype) for name, meta in metadata.items()}
    ckpt.load_model_and_optim(path, {"model": state})
    return {clean_param_name(name): tensor for name, tensor in state.items()}


def engine_model_from_weights(cfg: ModelConfig, weights: Dict[str, torch.Tensor]) -> Transformer:
    """An eval-mode Transformer on CPU holding `weights` (no copy, no random init)."""
    model = build_model(cfg, "meta")
    state = dict(weights)
    if cfg.tie_embeddings:
        state.setdefault("lm_head.weight", state["embeddings.weight"])
    model.load_state_dict(state, strict=True, assign=True)
    if cfg.tie_embeddings:
        model.lm_head.weight = model.embeddings.weight
    return model.eval()


def write_model_checkpoint(staging: Path, cfg: ModelConfig, weights: Dict[str, torch.Tensor],
                           config_toml: str, source: Dict[str, Any]) -> None:
    """Write a model-only checkpoint into `staging` (which the caller renames when done)."""
    state = {name: weights[name] for name in build_model(cfg, "meta").state_dict()}  # tied: both names
    (staging / ckpt.MODEL_AND_OPTIM).mkdir(parents=True)
    with warnings.catch_warnings():  # DCP warns that one process has no process group: expected
        warnings.filterwarnings("ignore", message="torch.distributed is disabled")
        dcp.save({"model": state}, checkpoint_id=str(staging / ckpt.MODEL_AND_OPTIM))
    (staging / CONFIG_FILE).write_text(config_toml)
    marker = {"step": 0, "ephemeral": False, "world_size": 1, "time": time.time(), "model_only": True,
              "converted_from": source}
    with open(staging / ckpt.MARKER, "w") as handle:
        json.dump(marker, handle)
        handle.flush()
        os.fsync(handle.fileno())
