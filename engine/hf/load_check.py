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

from engine.config import ExperimentConfig
from engine.errors import UserError

from .checkpoint_config import check_saved_config_fits
from .key_map import describe_names, expected_shapes


def check_load_path_fits(cfg: ExperimentConfig, path: Path) -> None:
    """Raise UserError if the checkpoint at `path` (already resolved) cannot initialise cfg.model
    or was trained with a different tokenizer than cfg.dataset's."""
    path = Path(path)
    check_saved_config_fits(cfg, path)
    from .engine_ckpt import model_tensor_metadata  # torch: the DCP metadata

    saved = {name: tuple(meta.size) for name, meta in model_tensor_metadata(path, "trainer.load_path").items()}
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
