"""An engine checkpoint's config.toml, read without torch: which architecture and tokenizer its
weights were trained with, and whether they match an experiment's (`check_saved_config_fits`).
engine_ckpt.py (the tensors, torch), load_check.py (adds the tensor shapes) and the launcher's
pre-flight (engine/preflight.py) all read it from here.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict

from engine.config import ExperimentConfig, ModelConfig
from engine.errors import UserError
from engine.run_dir import CONFIG_FILE

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib



@dataclass
class EngineCheckpoint:
    path: Path  # the stepN (or converted) directory
    model: ModelConfig
    config_data: Dict[str, Any]  # the whole config.toml, as read (tokenizer ids, paths)
    config_path: Path


def find_config(path: Path) -> Path:
    """config.toml beside the weights, else in the save folder or run dir above it."""
    for candidate in (path, path.parent, path.parent.parent):
        if (candidate / CONFIG_FILE).is_file():
            return candidate / CONFIG_FILE
    raise UserError("SRC", f"no {CONFIG_FILE} in {path} or the run directory above it: cannot tell the "
                    "model's architecture (checkpoints from `olmo-train` carry one)")


def read_checkpoint_config(path: Path) -> EngineCheckpoint:
    config_path = find_config(path)
    try:
        with open(config_path, "rb") as handle:
            data = tomllib.load(handle)
        model = ModelConfig(**data.get("model", {}))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise UserError(CONFIG_FILE, f"cannot read {config_path}: {exc}") from None
    except ValueError as exc:
        raise UserError(f"{config_path}: model", str(exc).splitlines()[-1]) from None
    return EngineCheckpoint(path, model, data, config_path)


# Fields that change tensor shapes or the computation's structure.
_ARCHITECTURE = ("family", "d_model", "n_layers", "n_heads", "kv_heads", "head_size", "mlp_hidden", "vocab_size",
                 "qk_norm", "tie_embeddings")


def _architecture(model: ModelConfig) -> Dict[str, Any]:
    return {name: getattr(model, name) for name in _ARCHITECTURE}


def _field_name(name: str) -> str:
    return {"kv_heads": "n_kv_heads", "mlp_hidden": "mlp_hidden_size", "head_size": "head_dim"}.get(name, name)


def check_saved_config_fits(cfg: ExperimentConfig, path: Path) -> None:
    """The torch-free half (the pre-flight runs it before a launch): the checkpoint's own
    config.toml, when it has one, names the same architecture and tokenizer as cfg."""
    path = Path(path)
    try:
        saved_ckpt = read_checkpoint_config(path)
    except UserError:
        saved_ckpt = None  # a bare DCP directory: check_load_path_fits's shapes still tell
    if saved_ckpt is not None:
        theirs, ours = _architecture(saved_ckpt.model), _architecture(cfg.model)
        for name in _ARCHITECTURE:
            if theirs[name] != ours[name]:
                field = _field_name(name)
                raise UserError(f"model.{field}", f"the weights at {path} have {field} = {theirs[name]} but "
                                f"this config has {ours[name]}: use --config {saved_ckpt.config_path} or "
                                f"--model.{field}={str(theirs[name]).lower()}")
        saved_tok = (saved_ckpt.config_data.get("dataset") or {}).get("tokenizer") or {}
        tok = cfg.dataset.tokenizer
        saved_vocab = saved_tok.get("vocab_size", 258 if saved_tok.get("kind", "byte") == "byte" else None)
        saved_eos = saved_tok.get("eos_token_id", 256 if saved_tok.get("kind", "byte") == "byte" else None)
        if saved_vocab is not None and saved_vocab != tok.vocab_size:
            name = saved_tok.get("name") or saved_tok.get("kind", "byte")
            raise UserError("dataset.tokenizer.vocab_size", f"the weights at {path} were trained with the "
                            f"{name} tokenizer of {saved_vocab} ids but the dataset's tokenizer has "
                            f"{tok.vocab_size}: the same id would mean a different token")
        if saved_eos is not None and saved_eos != tok.eos_token_id:
            raise UserError("dataset.tokenizer.eos_token_id", f"the weights at {path} use EOS id {saved_eos} "
                            f"but the dataset's tokenizer uses {tok.eos_token_id}")
