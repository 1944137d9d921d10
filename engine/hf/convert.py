"""HF directory <-> engine checkpoint, with every check done before the output is written.

Order in both directions (why: a failed conversion must leave nothing behind):
1. Inspect only: config, tensor names and shapes from the file headers / DCP metadata, the
   tokenizer's vocab. Any mismatch raises UserError (exit 2) here; nothing exists yet.
2. Load the tensors, map the names, cast.
3. Write into a hidden staging dir next to DST (`.DST.tmp-PID`), read the written files back
   and compare logits against the source model (engine/hf/validate.py).
4. Rename the staging dir to DST in one step. Any error or Ctrl-C before that removes it.
"""

from __future__ import annotations

import json
import os
import shutil
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, ContextManager, Dict, Iterator, List, Optional

import torch

from engine.config import ModelConfig
from engine.errors import UserError

from . import engine_ckpt, safetensors_io
from .config_map import first_id, hf_config_from_model, model_config_from_hf, read_hf_config
from .finetune_config import TokenizerInfo, finetune_config_toml, inspect_tokenizer
from .key_map import (
    describe_names, engine_to_hf_names, expected_shapes, is_ignored_hf_name, split_experts, stack_experts,
)
from .validate import DEFAULT_ATOL, ValidationResult, compare, transformers_available

# Files copied verbatim between HF dirs and converted checkpoints when present.
TOKENIZER_FILES = (
    "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "tokenizer.model",
    "vocab.json", "merges.txt", "added_tokens.json", "chat_template.jinja", "chat_template.json",
)
GENERATION_CONFIG = "generation_config.json"
# from-hf keeps the source's config.json under this name; to-hf reuses its token ids and context
# length (the engine's config has neither), also for runs fine-tuned from that checkpoint.
HF_SOURCE_CONFIG = "hf_config.json"
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}

# progress(description, total) -> context manager yielding advance(); the CLI passes a bar.
Progress = Callable[[str, int], ContextManager[Callable[[], None]]]


@contextmanager
def _no_progress(description: str, total: int) -> Iterator[Callable[[], None]]:
    yield lambda: None


@dataclass
class ConversionReport:
    dst: Path
    model: ModelConfig
    num_tensors: int
    num_params: int
    validation: Optional[ValidationResult]
    notes: List[str] = field(default_factory=list)


# ---- destination handling ------------------------------------------------------------------
def check_destination(dst: Path) -> Path:
    """DST must not exist yet (an empty directory is fine) and its parent must be writable."""
    dst = Path(dst).expanduser().absolute()
    if dst.exists() and not (dst.is_dir() and not any(dst.iterdir())):
        raise UserError("DST", f"{dst} already exists; choose a new directory (nothing is overwritten)")
    probe = dst.parent
    while not probe.exists() and probe.parent != probe:
        probe = probe.parent
    if not probe.is_dir() or not os.access(probe, os.W_OK | os.X_OK):
        raise UserError("DST", f"cannot create {dst}: {probe} is not a writable directory")
    return dst


@contextmanager
def staged_output(dst: Path) -> Iterator[Path]:
    """Yield a staging dir; on success it becomes `dst` atomically, on any error it vanishes
    together with any parent directories created for it."""
    created: List[Path] = []
    parent = dst.parent
    while not parent.exists():
        created.append(parent)
        parent = parent.parent
    dst.parent.mkdir(parents=True, exist_ok=True)
    staging = dst.parent / f".{dst.name}.tmp-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        yield staging
        if dst.is_dir():  # the empty directory check_destination allowed
            dst.rmdir()
        os.rename(staging, dst)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        for path in created:  # innermost first
            try:
                path.rmdir()
            except OSError:
                break
        raise


def _copy_known_files(src_dir: Optional[Path], dst_dir: Path, names) -> List[str]:
    copied = []
    if src_dir is None:
        return copied
    for name in names:
        if (src_dir / name).is_file():
            shutil.copyfile(src_dir / name, dst_dir / name)
            copied.append(name)
    return copied


def _validation_skipped(validate: bool, notes: List[str]) -> bool:
    if not validate:
        notes.append("validation skipped (--no-validate)")
        return True
    if not transformers_available():
        notes.append("validation skipped: the transformers library is not installed "
                     "(pip install transformers to compare logits)")
        return True
    return False


def _validation_seq_len(max_positions: Optional[int]) -> int:
    return min(32, max_positions) if max_positions else 32


# ---- HF -> engine ----------------------------------------------------------------------------
def plan_from_hf(src: Path) -> tuple:
    """Inspect an HF dir: (hf config dict, ModelConfig, engine->HF names to load, locations)."""
    if not src.is_dir():
        raise UserError("SRC", f"{src} is not a directory")
    hf = read_hf_config(src)
    cfg = model_config_from_hf(hf)
    locations = safetensors_io.weight_locations(src)
    shapes = safetensors_io.read_shapes(locations)
    names = engine_to_hf_names(cfg)
    expected = expected_shapes(cfg, per_expert=True)
    # A tied model's files may or may not carry lm_head.weight; the embedding is what counts.
    needed = {ours: theirs for ours, theirs in names.items()
              if not (cfg.tie_embeddings and ours == "lm_head.weight")}
    kind = f"{cfg.n_layers}-layer {hf['model_type']}"
    missing = [theirs for theirs in needed.values() if theirs not in shapes]
    if missing:
        raise UserError("SRC", f"{len(missing)} tensors a {kind} needs are missing: {describe_names(missing)}")
    known = set(names.values())
    unexpected = [name for name in shapes if name not in known and not is_ignored_hf_name(name)]
    if unexpected:
        raise UserError("SRC", f"{len(unexpected)} tensors do not belong to a {kind} as config.json "
                        f"describes it: {describe_names(unexpected)}")
    for ours, theirs in needed.items():
        if shapes[theirs] != expected[ours]:
            raise UserError(f"SRC: {theirs}", f"has shape {list(shapes[theirs])} but config.json implies "
                            f"{list(expected[ours])}")
    return hf, cfg, needed, locations


def from_hf(src: Path, dst: Path, *, validate: bool = True, atol: float = DEFAULT_ATOL,
            progress: Progress = _no_progress) -> ConversionReport:
    """Convert a local HF Llama / OLMo-2 directory into a model-only engine checkpoint at `dst`."""
    src = Path(src).expanduser().absolute()
    dst = check_destination(dst)
    hf, cfg, needed, locations = plan_from_hf(src)
    tokenizer: Optional[TokenizerInfo] = inspect_tokenizer(src, cfg.vocab_size, hf)
    config_toml = finetune_config_toml(cfg, dst, hf, tokenizer, name=src.name)
    notes: List[str] = []
    skip = _validation_skipped(validate, notes)

    with progress("reading HF tensors", len(needed)) as advance:
        loaded = safetensors_io.load_tensors(locations, list(needed.values()), on_tensor=lambda _: advance())
    # The engine keeps float32 master weights (model.dtype); bf16 files are upcast exactly.
    weights: Dict[str, torch.Tensor] = {ours: loaded.pop(theirs).to(torch.float32) for ours, theirs in needed.items()}
    stack_experts(cfg, weights)
    if cfg.tie_embeddings:
        weights["lm_head.weight"] = weights["embeddings.weight"]

    result = None
    with staged_output(dst) as staging:
        with progress("writing engine checkpoint", 1) as advance:
            engine_ckpt.write_model_checkpoint(staging, cfg, weights, config_toml,
                                               source={"format": "hf", "path": str(src), "model_type": hf["model_type"]})
            advance()
        shutil.copyfile(src / "config.json", staging / HF_SOURCE_CONFIG)
        copied = _copy_known_files(src, staging, (*TOKENIZER_FILES, GENERATION_CONFIG))
        if copied:
            notes.append(f"copied {', '.join(copied)}")
        del weights
        if not skip:
            with progress("validating (reading back, comparing logits)", 1) as advance:
                written = engine_ckpt.load_model_weights(staging)
                model = engine_ckpt.engine_model_from_weights(cfg, written)
                result = compare(model, src, cfg.vocab_size, _validation_seq_len(hf.get("max_position_embeddings")), atol)
                advance()
    return ConversionReport(dst, cfg, len(needed), cfg.num_params(), result, notes)


# ---- engine -> HF ----------------------------------------------------------------------------
def _token_ids(config_data: dict) -> Dict[str, Optional[int]]:
    tok = (config_data.get("dataset") or {}).get("tokenizer") or {}
    kind = tok.get("kind", "byte")
    ids = {"eos_token_id": first_id(tok.get("eos_token_id", 256 if kind == "byte" else None)),
           "pad_token_id": first_id(tok.get("pad_token_id", 257 if kind == "byte" else None)),
           "bos_token_id": first_id(tok.get("bos_token_id"))}
    return ids


def _origin_dirs(ckpt: engine_ckpt.EngineCheckpoint) -> List[Path]:
    """Folders that may hold the model's HF metadata: the checkpoint itself (a from-hf output),
    its config's folder, the trainer.load_path it was fine-tuned from, the tokenizer's folder."""
    dirs = [ckpt.path, ckpt.config_path.parent]
    load_path = (ckpt.config_data.get("trainer") or {}).get("load_path")
    if load_path:
        dirs.append(Path(os.path.expandvars(load_path)).expanduser())
    tokenizer_path = ((ckpt.config_data.get("dataset") or {}).get("tokenizer") or {}).get("path")
    if tokenizer_path:
        dirs.append(Path(os.path.expandvars(tokenizer_path)).expanduser().parent)
    return dirs


def _hf_source_config(ckpt: engine_ckpt.EngineCheckpoint) -> Optional[dict]:
    for folder in _origin_dirs(ckpt):
        if (folder / HF_SOURCE_CONFIG).is_file():
            try:
                return json.loads((folder / HF_SOURCE_CONFIG).read_text())
            except (OSError, ValueError):
                return None
    return None


def _tokenizer_source(ckpt: engine_ckpt.EngineCheckpoint, explicit: Optional[Path]) -> Optional[Path]:
    """Where tokenizer files come from: --tokenizer-dir, else the first origin dir holding them."""
    if explicit is not None:
        explicit = Path(explicit).expanduser()
        if not (explicit / "tokenizer.json").is_file() and not (explicit / "tokenizer.model").is_file():
            raise UserError("--tokenizer-dir", f"{explicit} holds no tokenizer.json or tokenizer.model")
        return explicit
    for folder in _origin_dirs(ckpt):
        if (folder / "tokenizer.json").is_file() or (folder / "tokenizer.model").is_file():
            return folder
    return None


def plan_to_hf(src: Path) -> tuple:
    """Inspect an engine checkpoint: (EngineCheckpoint, engine names to load)."""
    path = engine_ckpt.resolve_checkpoint(src)
    ckpt = engine_ckpt.read_checkpoint_config(path)
    cfg = ckpt.model
    saved = {name: tuple(meta.size) for name, meta in engine_ckpt.model_tensor_metadata(path).items()}
    expected = expected_shapes(cfg)
    needed = [name for name in expected if not (cfg.tie_embeddings and name == "lm_head.weight")]
    missing = [name for name in needed if name not in saved]
    if missing:
        raise UserError("SRC", f"{len(missing)} model tensors that {ckpt.config_path} implies are missing from "
                        f"{path}: {describe_names(missing)}")
    for name in needed:
        if saved[name] != expected[name]:
            raise UserError(f"SRC: {name}", f"has shape {list(saved[name])} but {ckpt.config_path} implies "
                            f"{list(expected[name])}")
    return ckpt, needed


def to_hf(src: Path, dst: Path, *, dtype: str = "float32", validate: bool = True, atol: float = DEFAULT_ATOL,
          max_shard_bytes: int = safetensors_io.DEFAULT_MAX_SHARD_BYTES, tokenizer_dir: Optional[Path] = None,
          progress: Progress = _no_progress) -> ConversionReport:
    """Convert an engine checkpoint (run dir, save folder, stepN or converted dir) into an HF
    directory that transformers' AutoModelForCausalLM.from_pretrained loads."""
    if dtype not in DTYPES:
        raise UserError("--dtype", f"{dtype!r} is not one of {', '.join(DTYPES)}")
    dst = check_destination(dst)
    ckpt, needed = plan_to_hf(Path(src))
    cfg = ckpt.model
    max_positions = (ckpt.config_data.get("train_module") or {}).get("max_sequence_length")
    token_ids = _token_ids(ckpt.config_data)
    source = _hf_source_config(ckpt)
    if source is not None:  # the original model's context length and special ids win
        max_positions = max(source.get("max_position_embeddings") or 0, max_positions or 0) or None
        token_ids = {key: source.get(key) for key in token_ids}
    hf_config = hf_config_from_model(cfg, dtype=dtype, max_position_embeddings=max_positions,
                                     token_ids=token_ids)
    tokenizer_from = _tokenizer_source(ckpt, tokenizer_dir)
    notes: List[str] = [f"weights from {ckpt.path}"]
    skip = _validation_skipped(validate, notes)

    with progress("reading engine checkpoint", 1) as advance:
        weights = engine_ckpt.load_model_weights(ckpt.path)
        advance()
    names = engine_to_hf_names(cfg)
    target = DTYPES[dtype]
    per_expert = split_experts(cfg, {name: weights[name] for name in needed})
    hf_tensors = {names[name]: tensor.to(target).contiguous() for name, tensor in per_expert.items()}

    result = None
    with staged_output(dst) as staging:
        with progress("writing safetensors", len(hf_tensors)) as advance:
            safetensors_io.save_weights(hf_tensors, staging, max_shard_bytes, on_tensor=lambda _: advance())
        (staging / "config.json").write_text(json.dumps(hf_config, indent=2) + "\n")
        copied = _copy_known_files(tokenizer_from, staging, (*TOKENIZER_FILES, GENERATION_CONFIG))
        if GENERATION_CONFIG not in copied:
            generation = {key: hf_config[key] for key in ("bos_token_id", "eos_token_id", "pad_token_id")
                          if hf_config[key] is not None}
            (staging / GENERATION_CONFIG).write_text(json.dumps(generation, indent=2) + "\n")
        if copied:
            notes.append(f"copied {', '.join(copied)} from {tokenizer_from}")
        elif (ckpt.config_data.get("dataset") or {}).get("tokenizer", {}).get("kind") == "hf":
            notes.append("no tokenizer files found: pass --tokenizer-dir DIR to include them")
        if not skip:
            with progress("validating (loading with transformers, comparing logits)", 1) as advance:
                # The engine side uses the weights exactly as written (rounded to `dtype`).
                rounded = {name: weights[name].to(target).to(torch.float32) for name in needed}
                model = engine_ckpt.engine_model_from_weights(cfg, rounded)
                result = compare(model, staging, cfg.vocab_size, _validation_seq_len(max_positions), atol)
                advance()
    return ConversionReport(dst, cfg, len(hf_tensors), cfg.num_params(), result, notes)
