"""The arithmetic data source: a Python generator of token ids (numpy only, no torch: the
app's pre-flight builds it too, to check there is enough data)."""

import random

from engine.data.token_source import ArrayTokens

EOS = 256  # the byte tokenizer's end-of-document id (engine/data/tokenizer.py)


def sums(seed: int, max_operand: int):
    """Byte ids of "a+b=c" documents, each followed by EOS, forever."""
    rng = random.Random(seed)
    while True:
        a, b = rng.randint(0, max_operand), rng.randint(0, max_operand)
        yield from f"{a}+{b}={a + b}".encode()
        yield EOS


def arithmetic_source(cfg, experiment):
    """A data source's builder gets (its config, the experiment config) and returns a token
    source: ArrayTokens holds what the generator yields, read once."""
    if experiment.dataset.tokenizer.kind != "byte":
        from engine.errors import DataError

        raise DataError("dataset.tokenizer.kind", "the arithmetic source yields byte ids: set "
                        "dataset.tokenizer.kind = 'byte'")
    source = ArrayTokens.from_iterable(sums(cfg.seed, cfg.max_operand), cfg.num_tokens,
                                       experiment.dataset.tokenizer.vocab_size)
    source.description = f"arithmetic sums (max {cfg.max_operand}), {source.num_tokens:,} byte tokens"
    return source
