"""`olmo-train prepare`: tokenize text or JSONL files into a token file for dataset.kind = numpy.

    olmo-train prepare INPUT... --output FILE [--tokenizer byte|PATH/tokenizer.json]
                       [--text-field text] [--eos-token-id N] [--dtype uint16|uint32] [--force]

Inputs: `*.jsonl` / `*.jsonl.gz` / `*.ndjson` hold one JSON object per line, the document in
`--text-field`; any other file is one plain-text (UTF-8) document. Globs are expanded (sorted).
Output: OLMo-core's layout, a raw headerless array of ids with EOS after every document,
written to a temp file beside FILE and renamed when complete (an error or Ctrl-C leaves
nothing), then FILE.manifest.json beside it (tokens, documents: engine/data/manifest.py). Exit codes: 0 done, 2 user error (one line on stderr), 130 interrupted.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import sys
from pathlib import Path
from typing import Iterator, List, Optional, Sequence, Tuple

import numpy as np

from engine.atomic import atomic_file
from engine.errors import EXIT_USER_ERROR, UserError

from .manifest import write_manifest
from .token_source import expand_paths
from .tokenizer import ByteTokenizer, HFTokenizer, smallest_dtype

JSONL_SUFFIXES = (".jsonl", ".jsonl.gz", ".ndjson", ".ndjson.gz")
ENCODE_BATCH = 256  # documents per tokenizer call (HF tokenizers parallelise a batch)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="olmo-train prepare",
        description="Tokenize text / JSONL files into a token file (raw uint16/uint32 ids, EOS after "
        "each document) for dataset.kind = numpy.")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="text or JSONL files (globs allowed)")
    p.add_argument("-o", "--output", required=True, help="token file to write, e.g. data/train.npy")
    p.add_argument("--tokenizer", default="byte",
                   help="'byte' (UTF-8 bytes, EOS 256; default) or the path of a local tokenizer.json")
    p.add_argument("--text-field", default="text", help="JSONL field holding the document (default: text)")
    p.add_argument("--eos-token-id", type=int, default=None,
                   help="EOS id for a tokenizer.json (default: its <|endoftext|>, </s> or <eos> token)")
    p.add_argument("--dtype", choices=("uint16", "uint32"), default=None,
                   help="element type (default: the smallest that fits the tokenizer's vocab)")
    p.add_argument("--force", action="store_true", help="replace an existing output file")
    return p


def _is_jsonl(path: Path) -> bool:
    return path.name.endswith(JSONL_SUFFIXES)


def _open(path: Path):
    return gzip.open(path, "rb") if path.name.endswith(".gz") else open(path, "rb")


def read_documents(path: Path, text_field: str) -> Iterator[Tuple[str, int]]:
    """(document, bytes of the file consumed so far) -- the byte count feeds the progress bar."""
    if not _is_jsonl(path):
        data = path.read_bytes()
        try:
            yield data.decode("utf-8"), len(data)
        except UnicodeDecodeError as exc:
            raise UserError("INPUT", f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
        return
    consumed = 0
    with _open(path) as handle:
        for line_no, raw in enumerate(handle, start=1):
            consumed += len(raw)
            if not raw.strip():
                continue
            try:
                record = json.loads(raw)
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                reason = exc.msg if isinstance(exc, json.JSONDecodeError) else "not UTF-8"
                raise UserError(None, f"{path}:{line_no}: not valid JSON ({reason})") from None
            text = record.get(text_field) if isinstance(record, dict) else None
            if not isinstance(text, str):
                raise UserError(None, f"{path}:{line_no}: no string field {text_field!r} "
                                "(choose the field with --text-field)")
            yield text, consumed


def _load_tokenizer(args):
    if args.tokenizer == "byte":
        return ByteTokenizer()
    return HFTokenizer(args.tokenizer, eos_token_id=args.eos_token_id, field="--tokenizer")


def _input_size(path: Path) -> int:
    return path.stat().st_size  # compressed size for .gz; the bar then tracks compressed bytes only roughly


def _progress():
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

    console = Console(stderr=True)
    return Progress(TextColumn("tokenizing {task.fields[name]}"), BarColumn(), DownloadColumn(),
                    TimeRemainingColumn(), console=console, transient=True, disable=not console.is_terminal)


def prepare(inputs: List[Path], output: Path, tokenizer, text_field: str, dtype: str) -> Tuple[int, int]:
    """Tokenize `inputs` into `output` atomically; returns (documents, tokens)."""
    limit = np.iinfo(dtype).max
    eos = np.array([tokenizer.eos_token_id], dtype=dtype)
    documents = tokens = 0
    # Token files are a commit point for training: whole or absent, even after a crash.
    with atomic_file(output, "wb", commit=True) as out, _progress() as bar:
        task = bar.add_task("tokenize", total=sum(_input_size(p) for p in inputs), name="")
        done_before = 0
        for path in inputs:
            bar.update(task, name=path.name)
            pending: List[str] = []

            def flush() -> None:
                nonlocal documents, tokens
                for ids in tokenizer.encode_batch(pending):
                    if ids.size and int(ids.max()) > limit:
                        raise UserError("--dtype", f"token id {int(ids.max())} does not fit {dtype}; "
                                        "use uint32")
                    out.write(ids.astype(dtype).tobytes())
                    out.write(eos.tobytes())
                    tokens += int(ids.size) + 1
                documents += len(pending)
                pending.clear()

            for text, consumed in read_documents(path, text_field):
                pending.append(text)
                if len(pending) >= ENCODE_BATCH:
                    flush()
                bar.update(task, completed=done_before + min(consumed, _input_size(path)))
            flush()
            done_before += _input_size(path)
        if documents == 0:
            raise UserError("INPUT", "the inputs hold no documents")
    return documents, tokens


def main_prepare(argv: Optional[Sequence[str]] = None) -> int:
    args = parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    try:
        inputs = expand_paths(args.inputs, "INPUT")
        output = Path(os.path.expanduser(args.output)).absolute()
        if output.is_dir():
            raise UserError("--output", f"{output} is a directory; name the token file to write")
        if output.exists() and not args.force:
            raise UserError("--output", f"{output} exists; pass --force to replace it")
        if not output.parent.is_dir():
            raise UserError("--output", f"folder {output.parent} does not exist")
        tokenizer = _load_tokenizer(args)
        if not 0 <= tokenizer.eos_token_id < tokenizer.vocab_size:
            raise UserError("--eos-token-id", f"{tokenizer.eos_token_id} is outside the tokenizer's "
                            f"{tokenizer.vocab_size} ids")
        dtype = args.dtype or smallest_dtype(tokenizer.vocab_size)
        if tokenizer.vocab_size - 1 > np.iinfo(dtype).max:
            raise UserError("--dtype", f"{dtype} cannot hold the tokenizer's {tokenizer.vocab_size} ids; "
                            "use uint32")
        try:
            documents, tokens = prepare(inputs, output, tokenizer, args.text_field, dtype)
        except PermissionError as exc:
            raise UserError("--output", f"cannot write {output}: {exc.strerror}") from None
        except OSError as exc:
            if exc.filename and Path(exc.filename).parent == output.parent:
                raise UserError("--output", f"cannot write {output}: {exc.strerror}") from None
            raise
    except UserError as exc:
        print(f"olmo-train prepare: error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("olmo-train prepare: interrupted; nothing written", file=sys.stderr)
        return 130

    write_manifest(output, tokens=tokens, documents=documents, dtype=dtype, eos_token_id=tokenizer.eos_token_id,
                   tokenizer="byte" if isinstance(tokenizer, ByteTokenizer) else Path(args.tokenizer).name)
    kind = "byte tokenizer" if isinstance(tokenizer, ByteTokenizer) else f"tokenizer {args.tokenizer}"
    print(f"prepared {documents:,} documents, {tokens:,} tokens ({dtype}, {kind}, "
          f"EOS {tokenizer.eos_token_id}) -> {output}")
    if isinstance(tokenizer, ByteTokenizer):
        use = f"--dataset.kind=numpy --dataset.paths='[{output}]' --dataset.tokenizer.kind=byte"
    else:
        tokenizer_path = Path(args.tokenizer).expanduser().absolute()
        use = (f"--dataset.kind=numpy --dataset.paths='[{output}]' --dataset.tokenizer.kind=hf "
               f"--dataset.tokenizer.path={tokenizer_path} "
               f"--dataset.tokenizer.vocab_size={tokenizer.vocab_size} "
               f"--dataset.tokenizer.eos_token_id={tokenizer.eos_token_id} "
               f"--dataset.tokenizer.pad_token_id={tokenizer.eos_token_id} --dataset.dtype={dtype} "
               f"--model.vocab_size=<at least {tokenizer.vocab_size}>")
    print(f"train on it with: {use}")
    return 0


if __name__ == "__main__":
    sys.exit(main_prepare())
