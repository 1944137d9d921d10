"""Pre-flight data checks: every data mistake we can find before training, as one DataError line.

Checked: token files exist (globs match), their size is a multiple of the dtype (else corrupt
or the wrong dataset.dtype), a quick sample of their ids fits the tokenizer and the model
(a strided sample plus the file tail: fast on terabytes, and catches the usual cases -- data
made with another tokenizer, uint32 files read as uint16 or back), the tokenizer config agrees
with the byte tokenizer or the local tokenizer.json, and the data holds one global batch.
The embedded corpus is built (and cached) here, so a broken work dir fails before training.
A mixture: every source and held-out set as above, and each source holds the tokens its ratio
needs over the run at its max_repetition (`mixture_plan`: the numbers --dry-run shows).
"""

from __future__ import annotations

from typing import List, Optional

import numpy as np

from engine.config import ExperimentConfig
from engine.config.data import BYTE_VOCAB_SIZE
from engine.errors import DataError

from .datasets import make_instances
from .manifest import manifest_documents
from .mixture import SourcePlan, plan_source, planned_rows
from .sources import DataSources, build_sources, size_field
from .token_source import TokenFiles
from .tokenizer import BYTE_EOS_ID, BYTE_PAD_ID, HFTokenizer

SAMPLE_WINDOWS = 64
SAMPLE_WINDOW_TOKENS = 4096


def sampled_max_id(files: TokenFiles) -> tuple:
    """(largest id seen, file it was in) over a strided sample of each file plus its tail."""
    best, where = -1, None
    for k, path in enumerate(files.paths):
        memmap = files.file_array(k)
        last = max(memmap.size - SAMPLE_WINDOW_TOKENS, 0)
        strided = np.linspace(0, last, SAMPLE_WINDOWS).astype(np.int64)
        starts = np.unique(np.append(strided, last))  # plus the tail
        for s in starts:
            window = memmap[s:s + SAMPLE_WINDOW_TOKENS]
            if window.size and int(window.max()) > best:
                best, where = int(window.max()), path
    return best, where


def check_tokenizer(cfg: ExperimentConfig) -> None:
    tok = cfg.dataset.tokenizer
    if cfg.dataset.token_dtype == "uint16" and tok.vocab_size > 1 << 16:
        raise DataError("dataset.dtype", f"uint16 cannot hold ids of a {tok.vocab_size}-token vocab; "
                        "use uint32 (or leave dataset.dtype unset)")
    if tok.kind == "byte":
        expected = {"vocab_size": BYTE_VOCAB_SIZE, "eos_token_id": BYTE_EOS_ID, "pad_token_id": BYTE_PAD_ID}
        for name, value in expected.items():
            if getattr(tok, name) != value:
                raise DataError(f"dataset.tokenizer.{name}", f"the byte tokenizer has {name} = {value}, "
                                f"not {getattr(tok, name)}")
        return
    if tok.path:
        hf = HFTokenizer(tok.path, eos_token_id=tok.eos_token_id)
        if hf.vocab_size > tok.vocab_size:
            raise DataError("dataset.tokenizer.vocab_size", f"{tok.path} has {hf.vocab_size} ids but "
                            f"dataset.tokenizer.vocab_size is {tok.vocab_size}")


def _check_ids(files: TokenFiles, cfg: ExperimentConfig, field: str) -> None:
    largest, where = sampled_max_id(files)
    tok_vocab, model_vocab = cfg.dataset.tokenizer.vocab_size, cfg.model.vocab_size
    hint = f"(files read as {files.dtype.name}; check dataset.dtype)"
    if largest >= model_vocab:
        raise DataError(field, f"{where} holds token id {largest} but model.vocab_size is {model_vocab} "
                        f"{hint}")
    if largest >= tok_vocab:
        raise DataError(field, f"{where} holds token id {largest}, beyond dataset.tokenizer.vocab_size "
                        f"{tok_vocab}: made with another tokenizer? {hint}")


def _files_of(source) -> Optional[TokenFiles]:
    """The token files under a held-out split or a max_tokens cap; None for a source that
    reads no files (synthetic, or an extension's)."""
    while not isinstance(source, TokenFiles):
        source = getattr(source, "source", None)  # a TokenSlice's
        if source is None:
            return None
    return source


def _documents(tokens) -> Optional[int]:
    files = _files_of(tokens)
    return manifest_documents(files) if files is not None else None


def mixture_plan(cfg: ExperimentConfig, sources: Optional[DataSources] = None) -> List[SourcePlan]:
    """Tokens, instances and epochs of every source of a mixture over the planned run (reads
    the files' sizes, and every document boundary when instances are packed)."""
    sources = sources or build_sources(cfg)
    ds, rows = cfg.dataset, planned_rows(cfg)
    plans = []
    for name, spec in ds.sources.items():
        tokens = sources.mixture[name]
        instances = make_instances(cfg, tokens, sources.eos_token_id, sources.pad_token_id)
        plans.append(plan_source(name, spec.ratio, tokens.num_tokens, len(instances),
                                 _documents(tokens), spec.max_repetition, rows,
                                 ds.sequence_length))
    return plans


def _check_mixture(cfg: ExperimentConfig, sources: DataSources) -> None:
    for name in cfg.dataset.sources:
        files = _files_of(sources.mixture[name])
        if files is not None:
            _check_ids(files, cfg, f"dataset.sources.{name}.paths")
    for plan in mixture_plan(cfg, sources):
        problem = plan.problem()
        if problem:
            raise DataError(f"dataset.sources.{plan.name}", problem)


def check_data(cfg: ExperimentConfig) -> None:
    """Raise DataError (one line, naming the field) for the first data problem found."""
    ds = cfg.dataset
    check_tokenizer(cfg)
    sources = build_sources(cfg)  # paths, globs, file sizes, the embedded corpus
    for name, held in sources.eval_sets.items():
        if isinstance(held, TokenFiles):
            _check_ids(held, cfg, f"dataset.eval_sets.{name}.paths")
    if sources.mixture:
        _check_mixture(cfg, sources)
    else:
        _check_flat(cfg, sources)
    lm_eval = cfg.trainer.callbacks.lm_evaluator
    evaluating = lm_eval.enabled and not cfg.trainer.no_evals
    for name, held in sources.held_out_sets().items() if evaluating else ():
        if held.num_tokens < 2:
            where = (f"dataset.eval_sets.{name}" if ds.eval_sets else f"dataset.sources.{name}" if sources.mixture
                     else "dataset.eval_paths")
            raise DataError(where, "no held-out tokens for the LM evaluator: the data is too small for a "
                            "held-out slice; add dataset.eval_paths (or eval_sets) or disable the evaluator")


def _check_flat(cfg: ExperimentConfig, sources: DataSources) -> None:
    ds = cfg.dataset
    if ds.kind == "numpy":
        _check_ids(sources.train if isinstance(sources.train, TokenFiles) else sources.train.source,
                   cfg, "dataset.paths")
    if isinstance(sources.held_out, TokenFiles):
        _check_ids(sources.held_out, cfg, "dataset.eval_paths")
    T, gbs = ds.sequence_length, cfg.data_loader.global_batch_size
    sequences = len(make_instances(cfg, sources.train, sources.eos_token_id, sources.pad_token_id))
    if sequences < gbs // T:
        raise DataError(size_field(ds), f"the training data holds {sequences} sequences of {T} tokens, fewer than one "
                        f"global batch (data_loader.global_batch_size = {gbs} tokens = {gbs // T} sequences)")


def mixture_lines(cfg: ExperimentConfig) -> List[str]:
    """One line per source of a mixture (tokens needed and held, epochs), for --dry-run; a data
    error becomes its own line (a dry run shows the config whatever the data)."""
    from .mixture import format_plan

    if not cfg.dataset.sources:
        return []
    try:
        return format_plan(mixture_plan(cfg))
    except DataError as exc:
        return [f"mixture: {exc}"]
