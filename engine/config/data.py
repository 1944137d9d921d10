"""Dataset, tokenizer and data-loader configs."""

from __future__ import annotations

import re
from typing import Dict, List, Literal, Optional

from pydantic import Field, field_validator, model_validator

from .base import MAX_SEED, Config, path_kind
from .extensions.registry import REGISTRIES, register
from .extensions.schema import ChoiceSection, bind

BYTE_VOCAB_SIZE = 258  # 256 byte values + EOS (256) + PAD (257)


class TokenizerConfig(Config):
    """How text becomes token ids; the ids must fit the model's vocab."""

    kind: Literal["byte", "hf"] = Field(
        "byte", description="byte: UTF-8 bytes as ids 0-255, EOS 256, PAD 257 (no files needed). "
        "hf: a local HuggingFace tokenizer.json."
    )
    name: Optional[str] = Field(None, description="Display name, e.g. gpt2 or dolma2.")
    path: Optional[str] = Field(None, description="Path to tokenizer.json (kind = hf); needed only to "
                                "tokenize text (prepare, downstream evals), not to read token files.",
                                json_schema_extra=path_kind())
    vocab_size: int = Field(BYTE_VOCAB_SIZE, gt=0, description="Number of ids the tokenizer can emit, in tokens.")
    eos_token_id: int = Field(256, ge=0, description="Id of the end-of-document token placed between documents.")
    pad_token_id: int = Field(257, ge=0, description="Id used to pad evaluation instances (never trained on).")
    bos_token_id: Optional[int] = Field(None, ge=0, description="Id of a beginning-of-document token, if any.")

    @model_validator(mode="after")
    def _check(self) -> "TokenizerConfig":
        for name in ("eos_token_id", "pad_token_id", "bos_token_id"):
            value = getattr(self, name)
            if value is not None and value >= self.vocab_size:
                raise ValueError(f"{name} ({value}) must be below tokenizer.vocab_size ({self.vocab_size})")
        return self


_SOURCE_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,39}$")
RATIO_TOLERANCE = 1e-6  # ratios written as decimals (0.1 + 0.2 ...) still sum to 1


def _as_list(value):
    # `--dataset.paths=data/train.npy` names one file (or one glob): a list of one.
    return [value] if isinstance(value, str) else value


class SourceConfig(Config):
    """One named source of a training mixture (engine/data/mixture.py draws the batches)."""

    kind: str = Field("numpy", description="The registered data source it reads (dataset.kind's choices): "
                      "numpy, or another (synthetic, embedded, an extension's) built as dataset.kind = "
                      "that would build it, its settings from the dataset section.")
    paths: List[str] = Field(default_factory=list, description="Token files of this source (kind = numpy; "
                             "globs allowed).", json_schema_extra=path_kind())
    ratio: float = Field(gt=0, le=1, description="Share of every global batch drawn from this source, "
                         "by instances (= tokens); the sources' ratios sum to 1.")
    max_repetition: float = Field(1.0, gt=0, description="Times this source may be read over the run "
                                  "(epochs of it); the pre-flight refuses a run that would need more.")
    max_tokens: Optional[int] = Field(None, gt=0, description="Use only the first N tokens of this "
                                      "source (a token cap); unset = all of it.")

    @field_validator("paths", mode="before")
    @classmethod
    def _one_path(cls, value):
        return _as_list(value)


class EvalSetConfig(Config):
    """One named held-out set of the LM evaluator (eval/lm/<name>/loss and ppl)."""

    paths: List[str] = Field(default_factory=list, description="Held-out token files (globs allowed).",
                             json_schema_extra=path_kind())

    @field_validator("paths", mode="before")
    @classmethod
    def _one_path(cls, value):
        return _as_list(value)


# The built-in data sources, registered like an extension's (engine/extend.py); their settings
# are DatasetConfig's own fields, an extension's source adds its section `dataset.<name>`.
register("data_source", "numpy", "engine.data.sources:numpy_source", None, "Token files (dataset.paths).")
register("data_source", "synthetic", "engine.data.sources:synthetic_source", None, "Random ids (benchmarks).")
register("data_source", "embedded", "engine.data.sources:embedded_source", None,
         "The built-in corpus of Python's own sources and docs.")


class DatasetConfig(ChoiceSection):
    """Where training tokens come from."""

    kind: str = Field(
        "embedded", description="numpy: raw token-id arrays (OLMo-core layout). synthetic: random ids "
        "(benchmarks). embedded: the built-in corpus of Python's own sources and docs (no download). "
        "Or a data source an extension registers (its settings under dataset.<kind>)."
    )
    paths: List[str] = Field(default_factory=list, description="Token files (kind = numpy): headerless "
                             "uint16/uint32 arrays with EOS between documents. Globs allowed.",
                             json_schema_extra=path_kind())
    eval_paths: List[str] = Field(default_factory=list, description="Held-out token files for the LM "
                                  "evaluator; empty = a held-out slice of the training data.",
                                  json_schema_extra=path_kind())
    sources: Dict[str, SourceConfig] = Field(
        default_factory=dict, description="A mixture (kind = numpy), instead of paths: named sources, "
        "each with token files and a ratio, e.g. [dataset.sources.code] paths = [...], ratio = 0.7.")
    eval_sets: Dict[str, EvalSetConfig] = Field(
        default_factory=dict, description="Named held-out sets for the LM evaluator, each reported as "
        "eval/lm/<name>/loss; empty = eval_paths, else each source's held-out tail (a mixture) or the "
        "training data's.")
    instances: Literal["concat", "packed"] = Field(
        "concat", description="concat: documents joined with EOS and cut into sequence_length windows. "
        "packed: whole documents packed into instances (never across one), the rest padded and "
        "left out of the loss; longer documents are split.")
    document_mask: bool = Field(False, description="instances = packed: attend only within each "
                                "document of an instance (a block-diagonal causal mask).")
    dtype: Optional[Literal["uint16", "uint32"]] = Field(
        None, description="Element type of the token files; unset = the smallest that fits the vocab."
    )
    sequence_length: int = Field(256, gt=0, description="Tokens per training instance.")
    synthetic_tokens: int = Field(
        1 << 24, gt=0, description="Size of the synthetic dataset (kind = synthetic), in tokens."
    )
    embedded_max_bytes: int = Field(
        8 << 20, gt=0, description="Cap on the embedded corpus size (kind = embedded), in bytes."
    )
    tokenizer: TokenizerConfig = Field(default_factory=TokenizerConfig, description="Tokenizer of the data.")
    work_dir: str = Field(
        "~/.cache/olmo-tui/data", description="Cache for prepared data (embedded corpus, shuffle indices). "
        "Shared across runs.", json_schema_extra=path_kind()
    )

    @field_validator("paths", "eval_paths", mode="before")
    @classmethod
    def _one_path(cls, value):
        return _as_list(value)

    @field_validator("sources", "eval_sets")
    @classmethod
    def _names(cls, value: dict) -> dict:
        for name in value:
            if not _SOURCE_NAME.match(name):
                raise ValueError(f"name {name!r}: use a letter, then letters, digits, '_' or '-' "
                                 "(at most 40 characters)")
        return value

    @property
    def token_dtype(self) -> str:
        return self.dtype or ("uint16" if self.tokenizer.vocab_size <= 1 << 16 else "uint32")


bind("data_source", DatasetConfig, "kind")


class DataLoaderConfig(Config):
    """Batching, shuffling and background loading."""

    global_batch_size: int = Field(
        16 * 256, gt=0, description="Tokens per optimizer step across all data-parallel ranks."
    )
    seed: int = Field(0, ge=0, le=MAX_SEED, description="Seed of the data order (shuffled again each "
                     "epoch; 0 to 2**32 - 1).")
    num_workers: int = Field(0, ge=0, description="Background loader processes per rank (0 = load in the "
                             "training process).")
    prefetch_factor: Optional[int] = Field(
        None, gt=0, description="Batches each worker loads ahead (needs num_workers > 0); unset = torch's default."
    )


def mixture_issues(cfg) -> List[tuple]:
    """(fields, message) for every mixture rule an ExperimentConfig breaks (no file is read)."""
    ds, issues = cfg.dataset, []
    if ds.sources and ds.kind != "numpy":
        issues.append((("dataset.sources", "dataset.kind"), "a mixture reads token files: set "
                       "dataset.kind = 'numpy'"))
    if ds.sources and ds.paths:
        issues.append((("dataset.sources", "dataset.paths"), "give either dataset.paths (one source) or "
                       "dataset.sources (a mixture), not both"))
    if ds.eval_sets and ds.eval_paths:
        issues.append((("dataset.eval_sets", "dataset.eval_paths"), "give either dataset.eval_paths (one "
                       "held-out set) or dataset.eval_sets (named ones), not both"))
    registered = REGISTRIES["data_source"]
    for name, source in ds.sources.items():
        if source.kind not in registered:
            issues.append(((f"dataset.sources.{name}.kind",), f"unknown data source {source.kind!r} "
                           f"(registered: {', '.join(registered.names())})"))
        elif source.kind == "numpy" and not source.paths:
            issues.append(((f"dataset.sources.{name}.paths",), f"source {name!r} has no token files"))
        elif source.kind != "numpy" and source.paths:
            issues.append(((f"dataset.sources.{name}.paths", f"dataset.sources.{name}.kind"),
                           f"paths are read by kind = 'numpy', not {source.kind!r}"))
    for name, eval_set in ds.eval_sets.items():
        if not eval_set.paths:
            issues.append(((f"dataset.eval_sets.{name}.paths",), f"held-out set {name!r} has no token files"))
    total = sum(source.ratio for source in ds.sources.values())
    if ds.sources and abs(total - 1.0) > RATIO_TOLERANCE:
        parts = " + ".join(f"{name} {source.ratio:g}" for name, source in ds.sources.items())
        issues.append((("dataset.sources",), f"the ratios sum to {total:g} ({parts}), not 1"))
    durations = [("trainer.max_duration", cfg.trainer.max_duration), ("trainer.hard_stop", cfg.trainer.hard_stop)]
    for field, duration in durations:
        if ds.sources and duration is not None and duration.unit.value == "epochs":
            issues.append(((field, "dataset.sources"), "a mixture has no epochs (each source has its own): "
                           "give the duration in steps or tokens"))
    if ds.document_mask and ds.instances != "packed":
        issues.append((("dataset.document_mask", "dataset.instances"), "per-document attention needs "
                       "dataset.instances = 'packed'"))
    tm = cfg.train_module
    for name, section in (("cp_config", tm.cp_config), ("pp_config", tm.pp_config)):
        if ds.document_mask and section is not None:
            issues.append((("dataset.document_mask", f"train_module.{name}"), "per-document attention is not "
                           f"supported with train_module.{name}; unset one of them"))
    return issues
