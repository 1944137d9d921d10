"""Dataset, tokenizer and data-loader configs."""

from __future__ import annotations

from typing import List, Literal, Optional

from pydantic import Field, field_validator, model_validator

from .base import MAX_SEED, Config, path_kind

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


class DatasetConfig(Config):
    """Where training tokens come from."""

    kind: Literal["numpy", "synthetic", "embedded"] = Field(
        "embedded", description="numpy: raw token-id arrays (OLMo-core layout). synthetic: random ids "
        "(benchmarks). embedded: the built-in corpus of Python's own sources and docs (no download)."
    )
    paths: List[str] = Field(default_factory=list, description="Token files (kind = numpy): headerless "
                             "uint16/uint32 arrays with EOS between documents. Globs allowed.",
                             json_schema_extra=path_kind())
    eval_paths: List[str] = Field(default_factory=list, description="Held-out token files for the LM "
                                  "evaluator; empty = a held-out slice of the training data.",
                                  json_schema_extra=path_kind())
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
        # `--dataset.paths=data/train.npy` names one file (or one glob): a list of one.
        return [value] if isinstance(value, str) else value

    @property
    def token_dtype(self) -> str:
        return self.dtype or ("uint16" if self.tokenizer.vocab_size <= 1 << 16 else "uint32")


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
