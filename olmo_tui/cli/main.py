"""The headless front door: `olmo-tui [--preset NAME] [overrides] [--dry-run] [--json]` and
subcommands. stdout carries data, stderr narration. With no arguments the Textual app opens.

This module must stay importable without torch or textual (start-up time, and the headless
path works on machines without a GPU stack).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Callable, Dict, List, Optional, Sequence

from engine.cli_args import print_config, run_parser, split_overrides  # noqa: F401  (re-exported)
from engine.config.errors import ConfigError  # the schema itself loads only when a config is resolved
from engine.errors import without_controls

from ..core import exit_codes
from .launch_args import (  # noqa: F401  (LAUNCH_FLAG_ADDERS etc. re-exported for backends)
    LAUNCH_FLAG_ADDERS, SHORTHAND_OVERRIDES, fail_config, launch_parser, resolve_from_args, shorthand_overrides,
)

if TYPE_CHECKING:
    from engine.config import ExperimentConfig

Subcommand = Callable[[List[str]], int]


def _err(message: str) -> None:
    print(without_controls(message), file=sys.stderr)


def narrate_summary(cfg: ExperimentConfig) -> None:
    from engine.config.parallel import mesh_text

    from ..core.config import describe
    from ..core.config.estimates import memory_estimate
    from ..core.formatting import gib, human_count

    model = cfg.model
    _err(
        f"# {cfg.run_name}: {human_count(model.num_params())} params "
        f"({human_count(model.num_non_embedding_params())} non-embedding"
        + (f", {human_count(model.num_active_params())} active" if model.moe is not None else "") + "), "
        f"{human_count(model.num_flops_per_token(cfg.dataset.sequence_length))} FLOPs/token, "
        f"{cfg.tokens_per_step:,} tokens/step, {describe.gpus(cfg)}, {describe.parallelism(cfg)}"
    )
    memory = f"; memory/rank {gib(memory_estimate(cfg).total)} on the worst rank" if cfg.launch.accelerator else ""
    _err(f"# mesh {mesh_text(cfg)} ({cfg.launch.world_size} rank(s)){memory}")
    if cfg.dataset.sources:  # tokens and epochs per source of a mixture
        from engine.data.checks import mixture_lines

        for line in mixture_lines(cfg):
            _err(f"# {line}")


def cmd_run(argv: List[str]) -> int:
    args, extras = launch_parser().parse_known_args(argv)
    try:
        cfg = resolve_from_args(args, extras)
    except ConfigError as exc:
        return fail_config(exc)
    if not args.dry_run and cfg.launch.notify is not None and cfg.launch.notify.is_set:
        # A hook in the config (launch.notify): queued as a one-run sweep, as --notify-cmd does,
        # so the detached sweep worker watches the run and calls the hook.
        return cmd_sweep(argv)
    from engine.errors import UserError

    from ..core.launch.preflight import launch_paths

    try:  # relative paths made absolute against this directory (Beaker: refused); --dry-run shows them so
        cfg = launch_paths(cfg)
    except UserError as exc:
        _err(f"error: {exc}")
        return exit_codes.USAGE
    if cfg.launch.backend == "beaker":  # git checks, --save-spec; with --dry-run: the exact spec
        from .beaker_flags import beaker_preflight

        code = beaker_preflight(cfg, args)
        if code is not None:
            return code
    if cfg.launch.backend == "slurm":  # shared-filesystem rule; with --dry-run: the job script
        from .slurm_flags import slurm_preflight

        code = slurm_preflight(cfg, args)
        if code is not None:
            return code
    if args.dry_run:
        narrate_summary(cfg)
        print_config(cfg, args.json)
        return exit_codes.OK
    from .follow import launch_headless

    return launch_headless(cfg, args, argv)


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
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(exit_codes.INTERRUPTED)


if __name__ == "__main__":
    entry()
