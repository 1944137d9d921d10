"""Do the weights at trainer.load_path fit this experiment? Checked in pre-flight, before the run
directory exists, so a mismatch is one line naming the setting (exit 2) instead of a DCP
traceback after the model was built.

Two sources of truth, both read without loading a tensor:
- the checkpoint's config.toml (every trainer checkpoint and every `convert from-hf` output has
  one): the architecture fields and the tokenizer the weights were trained with;
- the DCP metadata: every model tensor's global shape, compared with what cfg.model implies
  (this also covers a bare DCP directory without a config).
A different tokenizer (vocab size or EOS id) is refused: the same id would mean a different
token, and the converted model's loss would start from nonsense.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict

from engine.config import ExperimentConfig, ModelConfig
from engine.errors import UserError

from .engine_ckpt import model_tensor_metadata, read_checkpoint_config
from .key_map import describe_names, expected_shapes

# Fields that change tensor shapes or the computation's structure.
_ARCHITECTURE = ("family", "d_model", "n_layers", "n_heads", "kv_heads", "head_size", "mlp_hidden", "vocab_size",
                 "qk_norm", "tie_embeddings")


def _architecture(model: ModelConfig) -> Dict[str, Any]:
    return {name: getattr(model, name) for name in _ARCHITECTURE}


def _field_name(name: str) -> str:
    return {"kv_heads": "n_kv_heads", "mlp_hidden": "mlp_hidden_size", "head_size": "head_dim"}.get(name, name)


def check_load_path_fits(cfg: ExperimentConfig, path: Path) -> None:
    """Raise UserError if the checkpoint at `path` (already resolved) cannot initialise cfg.model
    or was trained with a different tokenizer than cfg.dataset's."""
    path = Path(path)
    try:
        saved_ckpt = read_checkpoint_config(path)
    except UserError:
        saved_ckpt = None  # a bare DCP directory: the shapes below still tell
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

    saved = {name: tuple(meta.size) for name, meta in model_tensor_metadata(path).items()}
    expected = expected_shapes(cfg.model)
    missing = [name for name in expected if name not in saved
               and not (cfg.model.tie_embeddings and name == "lm_head.weight")]
    if missing:
        raise UserError("trainer.load_path", f"{path} lacks {len(missing)} tensors this model needs: "
                        f"{describe_names(missing)}")
    for name, shape in expected.items():
        if name in saved and saved[name] != shape:
            raise UserError("trainer.load_path", f"{name} at {path} has shape {list(saved[name])} but "
                            f"this model's config implies {list(shape)}")
