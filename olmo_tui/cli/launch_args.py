"""The flags of the launching commands (`olmo-tui --preset ...` and `olmo-tui relaunch RUN`),
shared by cli.py and cli_runs.py so neither imports the other. The base surface (--preset,
--config, --set, overrides, --dry-run, --json) is the engine's (engine/cli_args.py).
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Callable, List, Sequence

from engine.cli_args import resolve_args, run_parser
from engine.config.errors import ConfigError

if TYPE_CHECKING:
    from engine.config import ExperimentConfig

from ..core import exit_codes

# Functions that add flags to the launching commands and functions that turn parsed flags into
# overrides (e.g. Beaker shorthands like --gpus 2 -> --launch.beaker.gpus=2). A backend adds
# its own by appending to both lists; an override maker reads flags with
# getattr(args, name, None).
LAUNCH_FLAG_ADDERS: List[Callable[[argparse.ArgumentParser], None]] = []
SHORTHAND_OVERRIDES: List[Callable[[argparse.Namespace], List[str]]] = []


def fail_config(exc: ConfigError) -> int:
    for line in exc.lines():
        print(line, file=sys.stderr)
    return exit_codes.USAGE


def add_follow_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("launching")
    group.add_argument("--detach", action="store_true",
                       help="start the run and print its id (a JSON record with --json) instead of following it")
    group.add_argument("--cancel-on-interrupt", action="store_true",
                       help="Ctrl-C also cancels the run (default: the run keeps going)")
    group.add_argument("--check", action="store_true",
                       help="a dry run that exits 2 where a launch would (the launch's pre-flight found a problem)")
    group.add_argument("--grace", type=float, default=60.0, metavar="SECONDS",
                       help="when cancelling: time for the final checkpoint before SIGKILL (default 60)")


LAUNCH_FLAG_ADDERS.append(add_follow_flags)


def _register_beaker_flags() -> None:
    from .beaker_flags import add_beaker_arguments, beaker_overrides

    LAUNCH_FLAG_ADDERS.append(add_beaker_arguments)
    SHORTHAND_OVERRIDES.append(beaker_overrides)


_register_beaker_flags()


def launch_parser(prog: str = "olmo-tui") -> argparse.ArgumentParser:
    parser = run_parser(prog)
    for add in LAUNCH_FLAG_ADDERS:
        add(parser)
    return parser


def shorthand_overrides(args: argparse.Namespace) -> List[str]:
    return [override for make in SHORTHAND_OVERRIDES for override in make(args)]


def resolve_from_args(args: argparse.Namespace, extras: Sequence[str]) -> ExperimentConfig:
    return resolve_args(args, extras, before=shorthand_overrides(args))
