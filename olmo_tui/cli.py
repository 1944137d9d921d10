"""The headless front door: `olmo-tui [--preset NAME] [overrides] [--dry-run] [--json]` and
subcommands. stdout carries data, stderr narration. With no arguments the Textual app opens.

This module must stay importable without torch or textual (start-up time, and the headless
path works on machines without a GPU stack).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Callable, Dict, List, Optional, Sequence

from engine.config import ConfigError, ExperimentConfig, resolve, to_toml

from .core import exit_codes

Subcommand = Callable[[List[str]], int]


def _err(message: str) -> None:
    print(message, file=sys.stderr)


def fail_config(exc: ConfigError) -> int:
    for line in exc.lines():
        _err(line)
    return exit_codes.USAGE


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
        epilog="Subcommands: presets, runs, logs, cancel, relaunch. Exit codes: 0 ok, 1 job failed, 2 usage/config error, "
        "3 launch error, 130 interrupted.",
    )
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--preset", help="preset name (see `olmo-tui presets`)")
    source.add_argument("--config", help="a TOML config file (e.g. a run's config.toml)")
    parser.add_argument("--set", action="append", default=[], metavar="A.B=V", help="an override (repeatable)")
    parser.add_argument("--dry-run", action="store_true", help="print the resolved config and exit")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    return parser


# Functions that add flags to the launching commands (`olmo-tui --preset ...`, `relaunch`) and
# functions that turn parsed flags into overrides (e.g. Beaker shorthands like --gpus 2 ->
# --launch.beaker.gpus=2). A backend adds its own by appending to both lists; an override
# maker reads flags with getattr(args, name, None) (olmo-train parses without them).
LAUNCH_FLAG_ADDERS: List[Callable[[argparse.ArgumentParser], None]] = []
SHORTHAND_OVERRIDES: List[Callable[[argparse.Namespace], List[str]]] = []


def add_follow_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("launching")
    group.add_argument("--detach", action="store_true",
                       help="start the run and print its id (a JSON record with --json) instead of following it")
    group.add_argument("--cancel-on-interrupt", action="store_true",
                       help="Ctrl-C also cancels the run (default: the run keeps going)")
    group.add_argument("--grace", type=float, default=60.0, metavar="SECONDS",
                       help="when cancelling: time for the final checkpoint before SIGKILL (default 60)")


LAUNCH_FLAG_ADDERS.append(add_follow_flags)


def _register_beaker_flags() -> None:
    from .core.backends.beaker.cli_flags import add_beaker_arguments, beaker_overrides

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
    overrides = shorthand_overrides(args) + list(args.set) + split_overrides(extras)
    return resolve(preset=args.preset, config_file=args.config, overrides=overrides)


def print_config(cfg: ExperimentConfig, as_json: bool) -> None:
    if as_json:
        print(json.dumps(cfg.model_dump(mode="json"), indent=2))
    else:
        sys.stdout.write(to_toml(cfg))


def narrate_summary(cfg: ExperimentConfig) -> None:
    from .core import describe

    model = cfg.model
    _err(
        f"# {cfg.run_name}: {describe.human_count(model.num_params())} params "
        f"({describe.human_count(model.num_non_embedding_params())} non-embedding), "
        f"{describe.human_count(model.num_flops_per_token(cfg.dataset.sequence_length))} FLOPs/token, "
        f"{cfg.tokens_per_step:,} tokens/step, {describe.gpus(cfg)}, {describe.parallelism(cfg)}"
    )


def cmd_run(argv: List[str]) -> int:
    args, extras = launch_parser().parse_known_args(argv)
    try:
        cfg = resolve_from_args(args, extras)
    except ConfigError as exc:
        return fail_config(exc)
    if cfg.launch.backend == "beaker":  # git checks, --save-spec; with --dry-run: the exact spec
        from .core.backends.beaker.cli_flags import beaker_preflight

        code = beaker_preflight(cfg, args)
        if code is not None:
            return code
    if args.dry_run:
        narrate_summary(cfg)
        print_config(cfg, args.json)
        return exit_codes.OK
    from .core.launch_headless import launch_headless

    return launch_headless(cfg, args, argv)


def cmd_presets(argv: List[str]) -> int:
    parser = argparse.ArgumentParser(prog="olmo-tui presets", description="List presets.")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    from .core.catalog import all_summaries

    summaries = all_summaries()
    if args.json:
        print(json.dumps([s.to_json() for s in summaries], indent=2))
    else:
        for summary in summaries:
            origin = "" if summary.builtin else "  (user)"
            print(summary.one_line() + origin)
    return exit_codes.OK


from .cli_runs import cmd_cancel, cmd_logs, cmd_relaunch, cmd_runs  # noqa: E402  (they use the helpers above)

SUBCOMMANDS: Dict[str, Subcommand] = {
    "presets": cmd_presets,
    "runs": cmd_runs,
    "logs": cmd_logs,
    "cancel": cmd_cancel,
    "relaunch": cmd_relaunch,
}


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv:
        from .app.main import run_app  # textual is imported only here

        return run_app()
    if argv[0] in SUBCOMMANDS:
        return SUBCOMMANDS[argv[0]](argv[1:])
    return cmd_run(argv)


def entry() -> None:
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(exit_codes.INTERRUPTED)


if __name__ == "__main__":
    entry()
