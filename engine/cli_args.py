"""The argument surface shared by `olmo-train` (engine/cli.py) and `olmo-tui` (olmo_tui/cli/main.py):
`--preset NAME | --config FILE`, `--set a.b=v`, `--a.b=v` overrides, `--dry-run`, `--json`.

The engine owns it so the engine never imports the app package; olmo_tui adds its launch flags
(backends, following) on top. Torch-free, like engine.config.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, List, Sequence

# Light modules only: `olmo-tui` with no arguments passes through here on its way to the app,
# which must not pay for the pydantic schema (resolve() imports it when it runs).
from engine.config.errors import ConfigError
from engine.config.presets import resolve, to_toml

if TYPE_CHECKING:
    from engine.config import ExperimentConfig


def split_overrides(extras: Sequence[str]) -> List[str]:
    """Keep `--a.b=v`, `--a.b` and `a.b=v`; anything else is a usage error."""
    overrides = []
    for arg in extras:
        if arg.startswith("--") or ("=" in arg and "." in arg.split("=", 1)[0]):
            overrides.append(arg)
        else:
            raise ConfigError.one("", f"unexpected argument {arg!r}: overrides look like --section.field=value")
    return overrides


def run_parser(prog: str = "olmo-tui") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        allow_abbrev=False,
        description="Launch or inspect a training run. Extra --section.field=value arguments override the preset.",
        epilog="Subcommands: presets, runs, logs, cancel, relaunch, sweep, diff, compare. Exit codes: 0 ok, 1 job failed, 2 usage/config error, "
        "3 launch error, 130 interrupted.",
    )
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--preset", help="preset name (see `olmo-tui presets`)")
    source.add_argument("--config", help="a TOML config file (e.g. a run's config.toml)")
    parser.add_argument("--set", action="append", default=[], metavar="A.B=V", help="an override (repeatable)")
    parser.add_argument("--dry-run", action="store_true", help="print the resolved config and exit")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    return parser


def resolve_args(args: argparse.Namespace, extras: Sequence[str], before: Sequence[str] = ()) -> ExperimentConfig:
    """The config that --preset/--config plus `before`, --set and the extra overrides name."""
    overrides = list(before) + list(args.set) + split_overrides(extras)
    return resolve(preset=args.preset, config_file=args.config, overrides=overrides)


def print_config(cfg: ExperimentConfig, as_json: bool) -> None:
    if as_json:
        print(json.dumps(cfg.model_dump(mode="json"), indent=2))
    else:
        sys.stdout.write(to_toml(cfg))
