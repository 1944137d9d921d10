"""Source mixtures, torch-free: which source each row of a global batch comes from, and the
plan of a run (tokens and epochs per source) that the pre-flight, `--dry-run` and the editor's
estimates show.

The draw: rows are handed out one at a time, in global order n = 0, 1, 2, ... (batch k holds
rows k*B .. k*B+B-1); row n goes to the source furthest behind its target, i.e. the largest
`ratio_i * (n + 1) - count_i` (ties: the first source in config order), and that source's count
grows by one. It needs no randomness and only the counts so far, so a global batch depends on
the counts at its start alone: the same on every rank, for any data-parallel world size, and
after a resume that restored the counts. Each source stays within one row of its target at every
row (|count_i - ratio_i * n| < 1), so by tokens a mixture is exact to within one instance per
source, whatever the run's length.

Which instance a source's c-th row is: its instances are visited in a permutation drawn from
(data_loader.seed, crc32(source name), epoch of the source = c // instances), a new one for each
pass (engine/data/mixture_loader.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import List, Optional, Sequence


def draw_rows(counts: List[int], ratios: Sequence[float], rows: int) -> List[int]:
    """The source of each of the next `rows` rows; `counts` (rows drawn so far per source) is
    advanced in place."""
    drawn = sum(counts)
    out = []
    for n in range(drawn + 1, drawn + rows + 1):
        # Deficits from the integer counts each time: no float error builds up over a long run.
        best, best_deficit = 0, -math.inf
        for i, ratio in enumerate(ratios):
            deficit = ratio * n - counts[i]
            if deficit > best_deficit:
                best, best_deficit = i, deficit
        counts[best] += 1
        out.append(best)
    return out


def rows_needed(ratio: float, total_rows: int) -> int:
    """The most rows a source at `ratio` gives to `total_rows` rows (count < ratio * n + 1)."""
    return math.ceil(ratio * total_rows - 1e-9)


@dataclass
class SourcePlan:
    """One source over the planned run (tokens counted as rows x sequence length)."""

    name: str
    ratio: float
    tokens: int  # training tokens the source holds (after its held-out tail and max_tokens)
    instances: int  # instances of sequence_length it yields in one pass
    documents: Optional[int]  # from the token files' manifests, when every file has one
    max_repetition: float
    rows_needed: int  # instances the planned run draws from it
    sequence_length: int

    @property
    def tokens_needed(self) -> int:
        return self.rows_needed * self.sequence_length

    @property
    def epochs(self) -> float:
        """Passes over the source the run makes."""
        return self.rows_needed / self.instances if self.instances else math.inf

    @property
    def allowed_rows(self) -> int:
        return math.floor(self.instances * self.max_repetition + 1e-9)

    def problem(self) -> Optional[str]:
        """One line with the numbers when the run needs more of this source than it may read."""
        if self.instances == 0:
            return (f"source {self.name!r} holds {self.tokens:,} training tokens, less than one instance "
                    f"of {self.sequence_length}; add data or remove the source")
        if self.rows_needed <= self.allowed_rows:
            return None
        T = self.sequence_length
        return (f"source {self.name!r} is too small for ratio {self.ratio:g}: the run needs "
                f"{self.tokens_needed:,} tokens of it ({self.epochs:.2f} epochs) but it holds "
                f"{self.instances * T:,} tokens x max_repetition {self.max_repetition:g} = "
                f"{self.allowed_rows * T:,}; lower its ratio, raise its max_repetition, shorten the "
                "run or add data")


def plan_source(name: str, ratio: float, tokens: int, instances: int, documents: Optional[int],
                max_repetition: float, total_rows: int, sequence_length: int) -> SourcePlan:
    return SourcePlan(name=name, ratio=ratio, tokens=tokens, instances=instances, documents=documents,
                      max_repetition=max_repetition, rows_needed=rows_needed(ratio, total_rows),
                      sequence_length=sequence_length)


def format_plan(plans: Sequence[SourcePlan]) -> List[str]:
    """Lines for --dry-run and the logs: one per source (its tokens as whole instances, the
    figure the pre-flight compares with)."""
    width = max((len(p.name) for p in plans), default=0)
    lines = []
    for p in plans:
        docs = f", {p.documents:,} docs" if p.documents is not None else ""
        lines.append(f"{p.name:<{width}}  ratio {p.ratio:<5g} needs {p.tokens_needed:>13,} of "
                     f"{p.instances * p.sequence_length:,} tokens{docs}: {p.epochs:.2f} epochs "
                     f"(max {p.max_repetition:g})")
    return lines


def planned_rows(cfg) -> int:
    """Instances the run draws: its steps (to the hard stop) x instances per global batch."""
    steps = cfg.steps_for(cfg.trainer.max_duration)
    if cfg.trainer.hard_stop is not None:
        steps = min(steps, cfg.steps_for(cfg.trainer.hard_stop))
    return steps * (cfg.data_loader.global_batch_size // cfg.dataset.sequence_length)


def quick_plan(cfg) -> List[SourcePlan]:
    """The plan from file sizes and manifests alone (no token is read), for the editor's
    estimates on every keystroke: the held-out tail is taken as its nominal size (the pre-flight
    snaps it to a document boundary) and packed instances as full ones, so the figures can be
    a little more generous than the pre-flight's (checks.mixture_plan). Raises DataError for a
    missing file."""
    from .manifest import manifest_documents
    from .sources import HELD_OUT_FRACTION, HELD_OUT_MAX_TOKENS
    from .token_source import TokenFiles, expand_paths

    ds, rows, T = cfg.dataset, planned_rows(cfg), cfg.dataset.sequence_length
    plans = []
    for name, spec in ds.sources.items():
        field = f"dataset.sources.{name}.paths"
        if spec.kind == "numpy":
            files = TokenFiles(expand_paths(spec.paths, field), ds.token_dtype, field)
        else:  # another registered source (synthetic, embedded, an extension's): built to be sized
            from .sources import registered_source

            files = registered_source(cfg, spec.kind)
        tokens = files.num_tokens
        if not ds.eval_sets:
            tokens -= min(tokens // HELD_OUT_FRACTION, HELD_OUT_MAX_TOKENS)
        if spec.max_tokens is not None:
            tokens = min(tokens, spec.max_tokens)
        documents = manifest_documents(files) if isinstance(files, TokenFiles) else None
        plans.append(plan_source(name, spec.ratio, tokens, tokens // T, documents,
                                 spec.max_repetition, rows, T))
    return plans
