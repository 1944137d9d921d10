"""From the config to token sources: the training tokens and the held-out (evaluation) tokens.

Held-out data: `dataset.eval_paths` when given; otherwise the tail of the training tokens,
min(5 %, 2^20 tokens), starting at a document boundary, is held out and never trained on. The
split does not depend on whether the LM evaluator is on, so switching it never moves the data.
The eval files are opened only when the LM evaluator runs, and synthetic data ignores them (it
holds out its own tail): a preset's real eval files never block a synthetic or eval-free run.

A mixture (`dataset.sources`): each source's files are one token source; its tail is held out
by the same rule (unless `dataset.eval_sets` names the held-out sets) and becomes the held-out
set of that name, then `max_tokens` caps what is left for training. `dataset.eval_sets`
replaces the held-out sets of either layout by named ones.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, Optional

from engine.config import ExperimentConfig
from engine.errors import DataError

from .embedded import build_embedded_corpus
from .token_source import SyntheticTokens, TokenFiles, TokenSlice, expand_paths, find_eos_at_or_after
from .tokenizer import BYTE_EOS_ID

HELD_OUT_FRACTION = 20  # 1/20 = 5 %
HELD_OUT_MAX_TOKENS = 1 << 20


@dataclass
class DataSources:
    train: object  # a token source (see token_source.py); a mixture: None
    held_out: object  # a mixture or named eval_sets: None
    eos_token_id: int
    pad_token_id: int
    description: str  # one line for the logs
    mixture: Dict[str, object] = field(default_factory=dict)  # source name -> its training tokens
    eval_sets: Dict[str, object] = field(default_factory=dict)  # held-out set name -> its tokens

    def held_out_sets(self) -> Dict[str, object]:
        """Name -> held-out tokens; "" names the one unnamed set (none: nothing evaluates)."""
        if self.eval_sets:
            return self.eval_sets
        return {"": self.held_out} if self.held_out is not None else {}


def _split_tail(source, eos_id: int):
    size = min(source.num_tokens // HELD_OUT_FRACTION, HELD_OUT_MAX_TOKENS)
    if size == 0:
        return source, TokenSlice(source, source.num_tokens, source.num_tokens)
    cut = source.num_tokens - size
    snapped = find_eos_at_or_after(source, cut, eos_id, window=size)
    if snapped < source.num_tokens:  # held-out starts right after an EOS: whole documents only
        cut = snapped
    return TokenSlice(source, 0, cut), TokenSlice(source, cut, source.num_tokens)


def _evaluating(cfg: ExperimentConfig) -> bool:
    return cfg.trainer.callbacks.lm_evaluator.enabled and not cfg.trainer.no_evals


def _named_eval_sets(cfg: ExperimentConfig) -> Dict[str, object]:
    ds = cfg.dataset
    if not _evaluating(cfg):  # nothing reads them: the files need not exist
        return {}
    return {name: TokenFiles(expand_paths(s.paths, f"dataset.eval_sets.{name}.paths"), ds.token_dtype,
                             f"dataset.eval_sets.{name}.paths")
            for name, s in ds.eval_sets.items()}


def registered_source(cfg: ExperimentConfig, kind: str):
    """A mixture source of another registered kind, built as `dataset.kind = kind` would build
    it (engine/extend.py's data_source table): the experiment seen with that kind and no mixture."""
    dataset = cfg.dataset.model_copy(update={"kind": kind, "sources": {}, "paths": []})
    experiment = cfg.model_copy(update={"dataset": dataset})
    component = dataset.component()
    # Its settings: the dataset.<kind> section when the config has one, else its defaults.
    own = getattr(cfg.dataset, component.name, None) if component.has_fields else None
    return component.builder()(own if own is not None else component.config(), experiment)


def _build_mixture(cfg: ExperimentConfig) -> DataSources:
    ds, tok = cfg.dataset, cfg.dataset.tokenizer
    mixture, held_out = {}, {}
    for name, spec in ds.sources.items():
        if spec.kind == "numpy":
            field_name = f"dataset.sources.{name}.paths"
            files = TokenFiles(expand_paths(spec.paths, field_name), ds.token_dtype, field_name)
        else:
            files = registered_source(cfg, spec.kind)
        eos = getattr(files, "eos_token_id", tok.eos_token_id)
        train, held = (files, None) if ds.eval_sets else _split_tail(files, eos)
        if spec.max_tokens is not None and spec.max_tokens < train.num_tokens:
            train = TokenSlice(train, 0, spec.max_tokens)
        mixture[name] = train
        if held is not None:
            held_out[name] = held
    eval_sets = _named_eval_sets(cfg) if ds.eval_sets else held_out
    parts = ", ".join(f"{name} {spec.ratio:g} ({mixture[name].num_tokens:,} tokens)"
                      for name, spec in ds.sources.items())
    return DataSources(train=None, held_out=None, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
                       description=f"mixture of {len(mixture)} sources: {parts} ({ds.token_dtype})",
                       mixture=mixture, eval_sets=eval_sets)


def size_field(ds) -> str:
    """The setting that decides how much training data there is (named when it is too little)."""
    return {"numpy": "dataset.paths", "synthetic": "dataset.synthetic_tokens",
            "embedded": "dataset.embedded_max_bytes"}.get(ds.kind, f"dataset.{ds.kind}")


def numpy_source(_cfg, experiment: ExperimentConfig):
    ds = experiment.dataset
    if not ds.paths:
        raise DataError("dataset.paths", "dataset.kind = 'numpy' needs at least one token file")
    files = TokenFiles(expand_paths(ds.paths, "dataset.paths"), ds.token_dtype, "dataset.paths")
    files.description = f"{len(files.paths)} token file(s), {files.num_tokens:,} tokens ({ds.token_dtype})"
    return files


def synthetic_source(_cfg, experiment: ExperimentConfig):
    ds, seed = experiment.dataset, experiment.data_loader.seed
    source = SyntheticTokens(ds.synthetic_tokens, ds.tokenizer.vocab_size, seed)
    source.description = f"synthetic random ids, {ds.synthetic_tokens:,} tokens (seed {seed})"
    return source


def embedded_source(_cfg, experiment: ExperimentConfig):
    ds = experiment.dataset
    if ds.tokenizer.kind != "byte":
        raise DataError("dataset.tokenizer.kind", "the embedded corpus uses the byte tokenizer: set "
                        "dataset.tokenizer.kind = 'byte'")
    path, meta = build_embedded_corpus(ds.work_dir, ds.embedded_max_bytes)
    source = TokenFiles([path], "uint16", "dataset.work_dir", content_id=meta["sha256"])
    source.eos_token_id = BYTE_EOS_ID
    source.description = (f"embedded corpus: {meta['documents']} Python {meta['python']} stdlib files, "
                          f"{meta['tokens']:,} byte tokens ({path})")
    return source


def build_sources(cfg: ExperimentConfig) -> DataSources:
    """The registered data source dataset.kind names (built-in or an extension's), split into
    training and held-out tokens. A source has num_tokens, read(start, end) and fingerprint()
    (engine/data/token_source.py), and may say its `description` and `eos_token_id`."""
    ds = cfg.dataset
    tok = ds.tokenizer
    if ds.kind == "numpy" and ds.sources:
        return _build_mixture(cfg)
    component = ds.component()
    source = component.builder()(ds.component_config(), cfg)
    eos, pad = getattr(source, "eos_token_id", tok.eos_token_id), tok.pad_token_id
    description = getattr(source, "description", None) or f"data source {component.name!r}, {source.num_tokens:,} tokens"

    held_out: Optional[object] = None
    if (ds.eval_paths or ds.eval_sets) and ds.kind == "synthetic":
        # Random ids are held out from their own tail; a preset's real eval files are not
        # needed (nor required to exist) for a synthetic run.
        train, held_out = _split_tail(source, eos)
        description += "; held-out files ignored (synthetic data holds out its own tail)"
    elif ds.eval_paths or ds.eval_sets:
        train = source
        if ds.eval_sets:
            held_out = None
        elif _evaluating(cfg):
            held_out = TokenFiles(expand_paths(ds.eval_paths, "dataset.eval_paths"), ds.token_dtype,
                                  "dataset.eval_paths")
        else:  # nothing reads held-out tokens: the eval files need not exist (training data unchanged)
            held_out = TokenSlice(source, source.num_tokens, source.num_tokens)
    else:
        train, held_out = _split_tail(source, eos)
    eval_sets = _named_eval_sets(cfg) if ds.eval_sets and ds.kind != "synthetic" else {}
    return DataSources(train=train, held_out=held_out, eos_token_id=eos, pad_token_id=pad,
                       description=description, eval_sets=eval_sets)
