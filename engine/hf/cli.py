"""`olmo-train convert from-hf|to-hf SRC DST`: the command line of engine/hf/convert.py.

Exit codes (docs/CONTRACTS.md): 0 converted and validated; 2 a user error found before anything
was written (unknown architecture, missing tensors, wrong shapes, vocab mismatch, DST exists);
1 the written model's logits differ from the source's (nothing is left at DST); 130 Ctrl-C.
"""

from __future__ import annotations

import argparse
import re
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator, List, Optional, Sequence

from engine.errors import UserError
from engine.run_dir import CONFIG_FILE

EXIT_OK, EXIT_FAILED, EXIT_USER_ERROR, EXIT_INTERRUPTED = 0, 1, 2, 130
_SIZE = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*([KMGT]?i?B?)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12,
          "KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40}


def parse_size(text: str) -> int:
    """'5GB', '500MB', '2GiB' or a byte count."""
    match = _SIZE.match(text)
    unit = (match.group(2) or "").upper() if match else None
    if not match or unit not in _UNITS:
        raise argparse.ArgumentTypeError(f"cannot read size {text!r}: write e.g. 5GB, 500MB or 2GiB")
    value = int(float(match.group(1)) * _UNITS[unit])
    if value <= 0:
        raise argparse.ArgumentTypeError("the shard size must be positive")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="olmo-train convert",
        description="Convert between HuggingFace Llama / OLMo-2 directories and engine checkpoints.")
    sub = parser.add_subparsers(dest="direction", required=True, metavar="{from-hf,to-hf}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--no-validate", action="store_true",
                        help="skip the logit comparison (it loads both models into memory)")
    common.add_argument("--atol", type=float, default=None,
                        help="largest accepted |logit difference| (default 1e-3)")

    from_hf = sub.add_parser("from-hf", parents=[common], help="HF directory -> engine checkpoint",
                             description="HF directory (config.json + safetensors) -> model-only engine "
                             "checkpoint with a ready fine-tuning config.toml (trainer.load_path = DST).")
    from_hf.add_argument("src", metavar="SRC", help="local HF model directory")
    from_hf.add_argument("dst", metavar="DST", help="new directory for the engine checkpoint")

    to_hf = sub.add_parser("to-hf", parents=[common], help="engine checkpoint -> HF directory",
                           description="Engine checkpoint (run dir, save folder, stepN dir or from-hf "
                           "output) -> HF directory that AutoModelForCausalLM.from_pretrained loads.")
    to_hf.add_argument("src", metavar="SRC", help="run dir, checkpoints folder or stepN directory")
    to_hf.add_argument("dst", metavar="DST", help="new directory for the HF model")
    to_hf.add_argument("--dtype", choices=("float32", "bfloat16", "float16"), default="float32",
                       help="dtype of the written weights (default float32)")
    to_hf.add_argument("--tokenizer-dir", type=Path, default=None,
                       help="copy tokenizer files from here (default: the checkpoint's own, or the "
                       "folder of dataset.tokenizer.path)")
    to_hf.add_argument("--max-shard-size", type=parse_size, default="5GB",
                       help="split weights into safetensors shards of at most this size (default 5GB)")
    return parser


@contextmanager
def rich_progress(description: str, total: int) -> Iterator[Callable[[], None]]:
    """A progress bar on stderr while it is a terminal (stdout keeps the summary lines); it
    clears itself when done, so an error stays the one line on stderr."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    console = Console(stderr=True)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True, disable=not console.is_terminal) as bar:
        task = bar.add_task(description, total=total)
        yield lambda: bar.advance(task)


def _summary(direction: str, src: str, report) -> List[str]:
    cfg = report.model
    kind = f"{cfg.family}, {cfg.n_layers} layers, d_model {cfg.d_model}, vocab {cfg.vocab_size}"
    lines = [f"converted {src} -> {report.dst} ({direction}): {kind}, {report.num_params:,} params, "
             f"{report.num_tensors} tensors"]
    if report.validation is not None:
        lines.append(report.validation.note)
    lines.extend(report.notes)
    if direction == "from-hf":
        lines.append(f"fine-tune with: olmo-train RUN_NAME --config {report.dst / CONFIG_FILE}"
                     f"   (or --trainer.load_path={report.dst})")
    else:
        lines.append(f"load with: transformers.AutoModelForCausalLM.from_pretrained({str(report.dst)!r})")
    return lines


def run_dir_of(src: str) -> Path:
    """SRC as given when it is a path that exists, else the run it names: a run id or name
    under the runs root, as `olmo-tui runs` lists them (GUIDE: `convert to-hf ft-demo ...`)."""
    from engine.run_marker import find_run_dir, runs_root

    path = Path(src).expanduser()
    if path.exists():
        return path
    found = find_run_dir(src)
    if found is None:
        raise UserError("SRC", f"{src} does not exist, and no run has that name or id under {runs_root()}")
    print(f"SRC: run {src} -> {found}", file=sys.stderr, flush=True)
    return found


def main_convert(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    from .validate import DEFAULT_ATOL, ValidationFailed  # torch: only once the arguments are fine

    from .convert import from_hf, to_hf

    atol = DEFAULT_ATOL if args.atol is None else args.atol
    validate = not args.no_validate
    try:
        if args.direction == "from-hf":
            report = from_hf(Path(args.src), Path(args.dst), validate=validate, atol=atol, progress=rich_progress)
        else:
            args.src = str(run_dir_of(args.src))
            report = to_hf(Path(args.src), Path(args.dst), dtype=args.dtype, validate=validate, atol=atol,
                           max_shard_bytes=args.max_shard_size, tokenizer_dir=args.tokenizer_dir,
                           progress=rich_progress)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return EXIT_USER_ERROR
    except ValidationFailed as exc:
        print(f"error: {exc}; nothing was written to {args.dst}", file=sys.stderr, flush=True)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print(f"interrupted; nothing was written to {args.dst}", file=sys.stderr, flush=True)
        return EXIT_INTERRUPTED
    for line in _summary(args.direction, args.src, report):
        print(line, flush=True)
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main_convert())
