"""The headless front door: `olmo-tui [--preset NAME] [overrides] [--dry-run] [--json]` and
subcommands. stdout carries data, stderr narration. With no arguments the Textual app opens.

This module must stay importable without torch or textual (start-up time, and the headless
path works on machines without a GPU stack).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from typing import Callable, Dict, List, Optional, Sequence

from engine.cli_args import print_config, run_parser, split_overrides  # noqa: F401  (re-exported)
from engine.config.errors import ConfigError  # the schema itself loads only when a config is resolved

from ..core import exit_codes
from .launch_args import (  # noqa: F401  (LAUNCH_FLAG_ADDERS etc. re-exported for backends)
    LAUNCH_FLAG_ADDERS, SHORTHAND_OVERRIDES, fail_config, launch_parser, resolve_from_args, shorthand_overrides,
)

Subcommand = Callable[[List[str]], int]
SIGPIPE_EXIT = 128 + signal.SIGPIPE  # what a shell reports for a process SIGPIPE ended


def cmd_run(argv: List[str]) -> int:
    args, extras = launch_parser().parse_known_args(argv)
    try:
        cfg = resolve_from_args(args, extras)
    except ConfigError as exc:
        return fail_config(exc)
    if args.dry_run or args.check:
        from .dry_run import dry_run

        return dry_run(cfg, args)
    from .follow import launch_headless

    return launch_headless(cfg, args)


def cmd_presets(argv: List[str]) -> int:
    parser = argparse.ArgumentParser(prog="olmo-tui presets", description="List presets.")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    from ..core.presets.catalog import all_summaries

    summaries = all_summaries()
    if args.json:
        print(json.dumps([s.to_json() for s in summaries], indent=2))
    else:
        for summary in summaries:
            origin = "" if summary.builtin else "  (user)"
            print(summary.one_line() + origin)
    return exit_codes.OK


# Subcommands live in their own modules, imported only when one is used: the registry, SQLite
# and the sweep/compare machinery stay out of a plain launch or --dry-run (start-up time,
# benchmarks/app_startup.py). A new subcommand: one such wrapper and an entry in SUBCOMMANDS.
def cmd_runs(argv: List[str]) -> int:
    from .runs import cmd_runs as run

    return run(argv)


def cmd_logs(argv: List[str]) -> int:
    from .runs import cmd_logs as run

    return run(argv)


def cmd_cancel(argv: List[str]) -> int:
    from .runs import cmd_cancel as run

    return run(argv)


def cmd_relaunch(argv: List[str]) -> int:
    from .runs import cmd_relaunch as run

    return run(argv)


def cmd_sweep(argv: List[str]) -> int:
    from .sweep import cmd_sweep as run

    return run(argv)


def cmd_diff(argv: List[str]) -> int:
    from .compare import cmd_diff as run

    return run(argv)


def cmd_compare(argv: List[str]) -> int:
    from .compare import cmd_compare as run

    return run(argv)


def cmd_annotate(argv: List[str]) -> int:
    from .runs import cmd_annotate as run

    return run(argv)


def cmd_serve(argv: List[str]) -> int:
    from .serve import cmd_serve as run

    return run(argv)


def wants_sweep(argv: List[str]) -> bool:
    if not any(arg.startswith(("--sweep", "--notify-")) for arg in argv):  # the common case, without the import
        return False
    from .sweep import wants_sweep as wants

    return wants(argv)


SUBCOMMANDS: Dict[str, Subcommand] = {
    "presets": cmd_presets,
    "runs": cmd_runs,
    "logs": cmd_logs,
    "cancel": cmd_cancel,
    "relaunch": cmd_relaunch,
    "sweep": cmd_sweep,
    "diff": cmd_diff,
    "compare": cmd_compare,
    "serve": cmd_serve,
    "annotate": cmd_annotate,
}


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv:
        from ..app.main import run_app  # textual is imported only here

        return run_app()
    if argv[0] in SUBCOMMANDS:
        return SUBCOMMANDS[argv[0]](argv[1:])
    if wants_sweep(argv):  # `olmo-tui --preset P --sweep a.b=1,2` is `olmo-tui sweep ...`
        return cmd_sweep(argv)
    return cmd_run(argv)


def entry() -> None:
    try:
        code = main()
        sys.stdout.flush()  # a closed pipe shows here, not in the interpreter's exit
    except KeyboardInterrupt:
        code = exit_codes.INTERRUPTED
    except BrokenPipeError:
        # The reader went away (`olmo-tui runs | head -1`): stop quietly, as `yes | head` does.
        # Python ignores SIGPIPE, so the write raised instead of ending the process; point
        # stdout at /dev/null so the interpreter's own flush at exit has nowhere to fail.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        code = SIGPIPE_EXIT
    sys.exit(code)


if __name__ == "__main__":
    entry()
