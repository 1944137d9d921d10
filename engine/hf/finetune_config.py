"""The config.toml a `convert from-hf` output carries: a ready fine-tuning experiment.

It is the `finetune-hf` preset (the fine-tuning recipe) with the converted model's [model]
section, its tokenizer and `trainer.load_path` pointing at the converted weights, validated
like any config. `olmo-train NAME --config DST/config.toml` therefore starts from the converted
weights with a matching architecture; `convert to-hf` reads the same file for the architecture.

Tokenizer and data:
- the HF dir has tokenizer.json: dataset.tokenizer is that tokenizer (kind = hf, ids from
  config.json) and the dataset is token files to prepare with `olmo-train prepare`
  (`${OLMO_DATA_ROOT}/finetune/*.npy` until you point dataset.paths elsewhere);
- no tokenizer but room for the byte tokenizer's 258 ids: the preset's embedded corpus;
- otherwise synthetic tokens over the model's vocab (a smoke test, not a fine-tune).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Optional

from engine.config import ConfigError, ModelConfig, load_experiment, preset_data, to_toml
from engine.config.data import BYTE_VOCAB_SIZE
from engine.config.presets import deep_merge
from engine.errors import UserError
from engine.run_dir import CONFIG_FILE

from .config_map import first_id

PRESET = "finetune-hf"
PLACEHOLDER_DATA = "${OLMO_DATA_ROOT}/finetune/*.npy"


@dataclass
class TokenizerInfo:
    vocab_size: int  # ids the tokenizer can emit, added tokens included


def inspect_tokenizer(model_dir: Path, model_vocab: int, hf: Dict[str, Any]) -> Optional[TokenizerInfo]:
    """The HF dir's tokenizer.json, checked against the model's vocab (None if there is none)."""
    path = Path(model_dir) / "tokenizer.json"
    if not path.is_file():
        return None
    try:
        from tokenizers import Tokenizer

        size = Tokenizer.from_file(str(path)).get_vocab_size(with_added_tokens=True)
    except Exception as exc:  # the tokenizers library raises its own exception types
        raise UserError("tokenizer.json", f"cannot read {path}: {exc}") from None
    if size > model_vocab:
        raise UserError("tokenizer.json", f"the tokenizer emits {size} ids but the model embeds only "
                        f"{model_vocab} (config.json vocab_size): they do not belong together")
    return TokenizerInfo(size)


def _dataset_section(base: Dict[str, Any], cfg: ModelConfig, dst: Path, hf: Dict[str, Any],
                     tokenizer: Optional[TokenizerInfo], name: str) -> Dict[str, Any]:
    seq = base.get("sequence_length", 128)
    eos = first_id(hf.get("eos_token_id"))
    pad = first_id(hf.get("pad_token_id"))
    bos = first_id(hf.get("bos_token_id"))
    if tokenizer is not None:
        tok = {"kind": "hf", "name": name, "path": str(dst / "tokenizer.json"),
               "vocab_size": tokenizer.vocab_size, "eos_token_id": eos if eos is not None else 0,
               "pad_token_id": pad if pad is not None else (eos if eos is not None else 0)}
        if bos is not None:
            tok["bos_token_id"] = bos
        return {"kind": "numpy", "paths": [PLACEHOLDER_DATA], "sequence_length": seq, "tokenizer": tok}
    if cfg.vocab_size >= BYTE_VOCAB_SIZE:
        return base
    ids = [i for i in (eos, pad) if i is not None and i < cfg.vocab_size]
    tok = {"kind": "hf", "name": "none", "vocab_size": cfg.vocab_size,
           "eos_token_id": ids[0] if ids else 0, "pad_token_id": ids[-1] if ids else 0}
    return {"kind": "synthetic", "sequence_length": seq, "tokenizer": tok}


def finetune_config_toml(cfg: ModelConfig, dst: Path, hf: Dict[str, Any], tokenizer: Optional[TokenizerInfo],
                         name: str) -> str:
    base = preset_data(PRESET)
    model = cfg.model_dump(mode="json", exclude_none=True)
    data = {k: v for k, v in base.items() if k != "model"}
    data = deep_merge(data, {"run_name": f"finetune-{name}"[:128], "model": model,
                             "trainer": {"load_path": str(dst)}})
    data["dataset"] = _dataset_section(base.get("dataset", {}), cfg, dst, hf, tokenizer, name)
    try:
        experiment = load_experiment(data)
    except ConfigError as exc:
        raise UserError("config", f"cannot build a fine-tuning config for this model: {exc}") from None
    header = (
        f"# Written by `olmo-train convert from-hf` for {name}: the finetune-hf recipe with this model's\n"
        "# architecture, tokenizer and trainer.load_path. Train with\n"
        f"#   olmo-train RUN_NAME --config {dst / CONFIG_FILE} [--dataset.paths='[...]']\n"
    )
    if tokenizer is not None:
        eos = experiment.dataset.tokenizer.eos_token_id
        header += ("# dataset.paths is a placeholder: tokenize your text with this model's tokenizer first\n"
                   f"#   mkdir -p data && olmo-train prepare docs.jsonl -o data/finetune.npy --tokenizer {dst / 'tokenizer.json'} "
                   f"--eos-token-id {eos}\n"
                   "# and add --dataset.paths='[\"data/finetune.npy\"]' to the olmo-train command.\n")
    return header + to_toml(experiment)
