"""Tokenizers that turn text into token ids: the byte-level one and a local HF tokenizer.json.

Byte-level: each UTF-8 byte is its own id (0-255), EOS is 256 and PAD 257, so any text
round-trips exactly and no file is needed (`engine.config.data.BYTE_VOCAB_SIZE` = 258).
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional, Sequence

import numpy as np

from engine.config.data import BYTE_VOCAB_SIZE, TokenizerConfig
from engine.errors import DataError

BYTE_EOS_ID = 256
BYTE_PAD_ID = 257

# Special tokens that mark the end of a document in common HF tokenizers, tried in order
# when the caller does not name an EOS id.
_EOS_CANDIDATES = ("<|endoftext|>", "</s>", "<eos>", "<|end_of_text|>", "[SEP]")


class ByteTokenizer:
    vocab_size = BYTE_VOCAB_SIZE
    eos_token_id = BYTE_EOS_ID
    pad_token_id = BYTE_PAD_ID
    name = "byte"

    def encode(self, text: str) -> np.ndarray:
        return np.frombuffer(text.encode("utf-8"), dtype=np.uint8).astype(np.uint32)

    def encode_batch(self, texts: Sequence[str]) -> List[np.ndarray]:
        return [self.encode(text) for text in texts]

    def decode(self, ids) -> str:
        data = np.asarray(ids)
        data = data[data < 256].astype(np.uint8)  # drop EOS/PAD
        return data.tobytes().decode("utf-8", errors="replace")


class HFTokenizer:
    """A local `tokenizer.json` read with the `tokenizers` library (no download)."""

    def __init__(self, path: str, eos_token_id: Optional[int] = None, field: str = "dataset.tokenizer.path"):
        from tokenizers import Tokenizer

        resolved = Path(path).expanduser()
        if not resolved.is_file():
            raise DataError(field, f"tokenizer file not found: {resolved}")
        try:
            self._tok = Tokenizer.from_file(str(resolved))
        except Exception as exc:  # the library raises plain Exceptions with long messages
            first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise DataError(field, f"cannot read tokenizer {resolved}: {first_line}") from None
        self.name = resolved.name
        self.vocab_size = self._tok.get_vocab_size(with_added_tokens=True)
        if eos_token_id is None:
            for token in _EOS_CANDIDATES:
                found = self._tok.token_to_id(token)
                if found is not None:
                    eos_token_id = found
                    break
        if eos_token_id is None:
            raise DataError(field, f"{resolved} has none of the usual end-of-document tokens "
                            f"({', '.join(_EOS_CANDIDATES)}): give the EOS id explicitly")
        self.eos_token_id = int(eos_token_id)

    def encode(self, text: str) -> np.ndarray:
        return np.asarray(self._tok.encode(text, add_special_tokens=False).ids, dtype=np.uint32)

    def encode_batch(self, texts: Sequence[str]) -> List[np.ndarray]:
        encodings = self._tok.encode_batch(list(texts), add_special_tokens=False)
        return [np.asarray(e.ids, dtype=np.uint32) for e in encodings]

    def decode(self, ids) -> str:
        return self._tok.decode([int(i) for i in ids])


def build_tokenizer(cfg: TokenizerConfig):
    """The tokenizer a config describes (kind = hf needs `path`)."""
    if cfg.kind == "byte":
        return ByteTokenizer()
    if not cfg.path:
        raise DataError("dataset.tokenizer.path", "tokenizer.kind = 'hf' needs the path of a tokenizer.json")
    return HFTokenizer(cfg.path, eos_token_id=cfg.eos_token_id)


def smallest_dtype(vocab_size: int) -> str:
    """The smallest unsigned type that holds every id below vocab_size (OLMo-core's rule)."""
    return "uint16" if vocab_size <= 1 << 16 else "uint32"
