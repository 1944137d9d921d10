"""Headless run subcommands: `olmo-tui runs [--sweep NAME] [--tag T] [--all] [--json]`,
`annotate RUN [--note TEXT] [--tag T] [--untag T] [--archive]`, `logs RUN [-f]`, `cancel RUN`,
`relaunch RUN [--resume] [overrides]`. RUN is a run id, a unique id prefix, or a run name (its
newest run). An unknown RUN is a usage error (exit 2).
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
import time
from typing import List

from engine.cli_args import split_overrides
from engine.config import ConfigError
from engine.errors import without_controls

from ..core import exit_codes
from ..core.backends.base import BackendError
from ..core.runs.registry import Registry, RegistryError, RunRecord, UnknownRun, tag_problem
from ..core.views.run_table import table_row
from .launch_args import fail_config, launch_parser, shorthand_overrides


def _err(message: str) -> None:
    print(without_controls(message), file=sys.stderr)


def find_run(registry: Registry, ref: str) -> RunRecord:
    return registry.find(ref)


def lookup_run(registry: Registry, ref: str):
    """The run `ref` names, or the exit code after saying why not (2 unknown, 3 registry broken)."""
    from ..core.runs.discovery import discover_engine_runs

    try:
        discover_engine_runs(registry)  # `olmo-tui logs NAME` for a run olmo-train started
        return find_run(registry, ref)
    except UnknownRun as exc:
        _err(f"error: {exc}")
        return exit_codes.USAGE
    except RegistryError as exc:
        _err(f"error: {exc}")
        return exit_codes.LAUNCH


def cmd_runs(argv: List[str]) -> int:
    parser = argparse.ArgumentParser(prog="olmo-tui runs", description="List runs (newest first).")
    parser.add_argument("--json", action="store_true", help="one JSON array of run records")
    parser.add_argument("--sweep", metavar="NAME", help="only the runs of this sweep, in queue order")
    parser.add_argument("--tag", action="append", default=[], metavar="TAG",
                        help="only runs with this tag (repeat: all of them)")
    parser.add_argument("--all", action="store_true", help="archived runs too (hidden by default)")
    args = parser.parse_args(argv)
    from ..core.launch.run_manager import refresh_all, refresh_run
    from ..core.launch.sweep_queue import ensure_workers, get_sweep

    registry = Registry()
    try:
        if args.sweep:
            if get_sweep(args.sweep, registry) is None:
                _err(f"error: no sweep {args.sweep!r}; runs of sweeps show the sweep name in `olmo-tui runs --json`")
                return exit_codes.USAGE
            runs = [refresh_run(run, registry) for run in registry.of_sweep(args.sweep)]
        else:
            runs = refresh_all(registry)
        ensure_workers(registry)  # a sweep whose worker was killed gets a new one
    except (RegistryError, sqlite3.Error) as exc:
        _err(f"error: run registry: {exc}")
        return exit_codes.LAUNCH
    runs = [run for run in runs if (args.all or not run.archived) and set(args.tag) <= set(run.tags)]
    if args.json:
        print(json.dumps([run.to_json() for run in runs], indent=2))
        return exit_codes.OK
    header = ["ID", "PRESET", "BACKEND", "STATUS", "STEP", "LOSS", "TOK/S", "MFU", "AGE"]
    now = time.time()
    rows = [header] + [table_row(run, now) for run in runs]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
    return exit_codes.OK


def cmd_logs(argv: List[str]) -> int:
    parser = argparse.ArgumentParser(prog="olmo-tui logs", description="Print a run's log.")
    parser.add_argument("run", help="run id, id prefix or name")
    parser.add_argument("-f", "--follow", action="store_true",
                        help="keep printing new lines until the run ends; the exit code is then the job's "
                             "(0 succeeded, 1 failed)")
    args = parser.parse_args(argv)
    from .follow import Follower, describe_end, result_code

    registry = Registry()
    run = lookup_run(registry, args.run)
    if isinstance(run, int):
        return run
    try:
        follower = Follower(run, registry)
        run = follower.follow(follow=args.follow)
    except BackendError as exc:
        _err(f"error: {exc}")
        return exit_codes.LAUNCH
    except KeyboardInterrupt:
        return exit_codes.INTERRUPTED
    if not args.follow:
        return exit_codes.OK
    _err(describe_end(run))
    return result_code(run)


def cmd_cancel(argv: List[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="olmo-tui cancel",
        description="Stop a run: SIGTERM (the engine writes a final checkpoint), then SIGKILL after the grace period.")
    parser.add_argument("run", nargs="?", help="run id, id prefix or name")
    parser.add_argument("--sweep", metavar="NAME", help="every run of this sweep still queued or running")
    parser.add_argument("--grace", type=float, default=60.0, metavar="SECONDS", help="default 60")
    parser.add_argument("--no-wait", action="store_true", help="return once the stop is requested")
    args = parser.parse_args(argv)
    from .follow import describe_end
    from ..core.launch.run_manager import cancel_run, refresh_run

    registry = Registry()
    if bool(args.run) == bool(args.sweep):
        _err("error: give a RUN or --sweep NAME (one of them)")
        return exit_codes.USAGE
    if args.sweep:
        return _cancel_sweep(registry, args)
    run = lookup_run(registry, args.run)
    if isinstance(run, int):
        return run
    run = refresh_run(run, registry)  # a run recorded as lost may be alive after all
    if run.terminal:
        _err(f"run {run.id} already ended ({run.status}); nothing to cancel")
        return exit_codes.OK
    try:
        run = cancel_run(run, grace_s=args.grace, registry=registry, wait_s=None if args.no_wait else args.grace + 30)
    except BackendError as exc:
        _err(f"error: {exc}")
        return exit_codes.LAUNCH
    _err(describe_end(run) if run.terminal else f"run {run.id}: stop requested")
    return exit_codes.OK if run.terminal or args.no_wait else exit_codes.LAUNCH


def _cancel_sweep(registry: Registry, args) -> int:
    """Queued runs first (so the worker starts none of them), then the running ones."""
    from ..core.launch.run_manager import cancel_run, refresh_run
    from ..core.launch.sweep_queue import get_sweep

    if get_sweep(args.sweep, registry) is None:
        _err(f"error: no sweep {args.sweep!r}")
        return exit_codes.USAGE
    runs = sorted(registry.of_sweep(args.sweep), key=lambda r: not r.waiting_in_queue)
    try:
        for run in runs:
            if not run.terminal:
                cancel_run(run, grace_s=args.grace, registry=registry, wait_s=None)
        deadline = time.monotonic() + (0 if args.no_wait else args.grace + 30)
        while time.monotonic() < deadline and not all(r.terminal for r in registry.of_sweep(args.sweep)):
            time.sleep(0.5)
            for run in registry.of_sweep(args.sweep):
                refresh_run(run, registry)
    except BackendError as exc:
        _err(f"error: {exc}")
        return exit_codes.LAUNCH
    runs = registry.of_sweep(args.sweep)
    ended = sum(r.terminal for r in runs)
    _err(f"sweep {args.sweep}: {ended} of {len(runs)} runs ended" + ("" if ended == len(runs) else ", the rest stopping"))
    return exit_codes.OK if ended == len(runs) or args.no_wait else exit_codes.LAUNCH


def cmd_relaunch(argv: List[str]) -> int:
    parser = launch_parser(prog="olmo-tui relaunch")
    parser.description = ("Start a new run from RUN's resolved config with the given overrides; "
                          "the new run records RUN as its parent.")
    parser.add_argument("run", help="run id, id prefix or name")
    parser.add_argument("--resume", action="store_true",
                        help="continue from RUN's latest checkpoint (same checkpoint folder)")
    args, extras = parser.parse_known_args(argv)
    if args.preset or args.config:
        _err("error: relaunch takes its config from RUN; --preset/--config are not allowed")
        return exit_codes.USAGE
    from ..core.launch import run_manager
    from .follow import launch_and_follow

    registry = Registry()
    parent = lookup_run(registry, args.run)
    if isinstance(parent, int):
        return parent
    try:
        overrides = shorthand_overrides(args) + list(args.set) + split_overrides(extras)
        cfg = (run_manager.resume_config(parent, overrides) if args.resume
               else run_manager.relaunch_config(parent, overrides))
    except RegistryError as exc:
        _err(f"error: {exc}")
        return exit_codes.LAUNCH
    except ConfigError as exc:
        return fail_config(exc)
    except BackendError as exc:
        _err(f"error: {exc}")
        return exit_codes.USAGE
    if args.dry_run or args.check:
        from .dry_run import dry_run

        return dry_run(cfg, args)
    from ..core.launch.launcher import relaunch

    return launch_and_follow(
        lambda reg: relaunch(parent, resume=args.resume, registry=reg, cfg=cfg,
                             warn=lambda warning: _err(f"warning: {warning}")), args)


def cmd_annotate(argv: List[str]) -> int:
    """`olmo-tui annotate RUN [--note TEXT] [--tag T] [--untag T] [--archive | --unarchive]`:
    the run's notes, tags and archived flag in the registry; prints the run's record (JSON)."""
    parser = argparse.ArgumentParser(prog="olmo-tui annotate", description="Set a run's notes, tags or archive flag.")
    parser.add_argument("run", help="run id, unique id prefix, or run name")
    parser.add_argument("--note", metavar="TEXT", help="replace the run's notes ('' clears them)")
    parser.add_argument("--tag", action="append", default=[], metavar="TAG", help="add a tag (repeatable)")
    parser.add_argument("--untag", action="append", default=[], metavar="TAG", help="remove a tag (repeatable)")
    flag = parser.add_mutually_exclusive_group()
    flag.add_argument("--archive", action="store_true", help="hide it from `runs` and the runs table")
    flag.add_argument("--unarchive", action="store_true", help="show it again")
    args = parser.parse_args(argv)
    problem = next((tag_problem(t) for t in args.tag if tag_problem(t)), None)
    if problem:
        _err(f"error: --tag: {problem}")
        return exit_codes.USAGE
    registry = Registry()
    run = lookup_run(registry, args.run)
    if isinstance(run, int):
        return run
    changes = {}
    if args.note is not None:
        changes["notes"] = args.note or None
    if args.tag or args.untag:
        tags = [t for t in run.tags if t not in args.untag]
        changes["tags"] = tags + [t.strip() for t in args.tag if t.strip() not in tags]
    if args.archive or args.unarchive:
        changes["archived"] = bool(args.archive)
    registry.update(run.id, **changes)
    print(json.dumps(registry.get(run.id).to_json(), indent=2))
    return exit_codes.OK
