"""From the config to token sources: the training tokens and the held-out (evaluation) tokens.

Held-out data: `dataset.eval_paths` when given; otherwise the tail of the training tokens,
min(5 %, 2^20 tokens), starting at a document boundary, is held out and never trained on. The
split does not depend on whether the LM evaluator is on, so switching it never moves the data.
The eval files are opened only when the LM evaluator runs, and synthetic data ignores them (it
holds out its own tail): a preset's real eval files never block a synthetic or eval-free run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from engine.config import ExperimentConfig
from engine.errors import DataError

from .embedded import build_embedded_corpus
from .token_source import SyntheticTokens, TokenFiles, TokenSlice, expand_paths, find_eos_at_or_after
from .tokenizer import BYTE_EOS_ID

HELD_OUT_FRACTION = 20  # 1/20 = 5 %
HELD_OUT_MAX_TOKENS = 1 << 20


@dataclass
class DataSources:
    train: object  # a token source (see token_source.py)
    held_out: object
    eos_token_id: int
    pad_token_id: int
    description: str  # one line for the logs


def _split_tail(source, eos_id: int):
    size = min(source.num_tokens // HELD_OUT_FRACTION, HELD_OUT_MAX_TOKENS)
    if size == 0:
        return source, TokenSlice(source, source.num_tokens, source.num_tokens)
    cut = source.num_tokens - size
    snapped = find_eos_at_or_after(source, cut, eos_id, window=size)
    if snapped < source.num_tokens:  # held-out starts right after an EOS: whole documents only
        cut = snapped
    return TokenSlice(source, 0, cut), TokenSlice(source, cut, source.num_tokens)


def build_sources(cfg: ExperimentConfig) -> DataSources:
    ds = cfg.dataset
    tok = ds.tokenizer
    eos, pad = tok.eos_token_id, tok.pad_token_id
    if ds.kind == "numpy":
        if not ds.paths:
            raise DataError("dataset.paths", "dataset.kind = 'numpy' needs at least one token file")
        files = TokenFiles(expand_paths(ds.paths, "dataset.paths"), ds.token_dtype, "dataset.paths")
        description = f"{len(files.paths)} token file(s), {files.num_tokens:,} tokens ({ds.token_dtype})"
        source = files
    elif ds.kind == "synthetic":
        source = SyntheticTokens(ds.synthetic_tokens, tok.vocab_size, cfg.data_loader.seed)
        description = f"synthetic random ids, {ds.synthetic_tokens:,} tokens (seed {cfg.data_loader.seed})"
    else:  # embedded
        if tok.kind != "byte":
            raise DataError("dataset.tokenizer.kind", "the embedded corpus uses the byte tokenizer: set "
                            "dataset.tokenizer.kind = 'byte'")
        path, meta = build_embedded_corpus(ds.work_dir, ds.embedded_max_bytes)
        source = TokenFiles([path], "uint16", "dataset.work_dir", content_id=meta["sha256"])
        eos = BYTE_EOS_ID
        description = (f"embedded corpus: {meta['documents']} Python {meta['python']} stdlib files, "
                       f"{meta['tokens']:,} byte tokens ({path})")

    held_out: Optional[object] = None
    if ds.eval_paths and ds.kind == "synthetic":
        # Random ids are held out from their own tail; a preset's real eval files are not
        # needed (nor required to exist) for a synthetic run.
        train, held_out = _split_tail(source, eos)
        description += "; dataset.eval_paths ignored (synthetic data holds out its own tail)"
    elif ds.eval_paths:
        train = source
        lm_eval = cfg.trainer.callbacks.lm_evaluator
        if lm_eval.enabled and not cfg.trainer.no_evals:
            held_out = TokenFiles(expand_paths(ds.eval_paths, "dataset.eval_paths"), ds.token_dtype,
                                  "dataset.eval_paths")
        else:  # nothing reads held-out tokens: the eval files need not exist (training data unchanged)
            held_out = TokenSlice(source, source.num_tokens, source.num_tokens)
    else:
        train, held_out = _split_tail(source, eos)
    return DataSources(train=train, held_out=held_out, eos_token_id=eos, pad_token_id=pad,
                       description=description)
