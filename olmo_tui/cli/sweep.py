"""`olmo-tui sweep`: launch a grid (and/or paired axes) of variants through a queue.

    olmo-tui sweep --preset tiny-cpu --sweep train_module.optim.lr=1e-3,3e-3 --sweep init_seed=0,1 --max-parallel 2
    olmo-tui sweep my-sweep.toml [--dry-run] [--detach]
    olmo-tui --preset tiny-cpu --sweep init_seed=0,1,2      # the launch command takes --sweep too

Every variant is validated first (a bad one: one line, exit 2, nothing queued). Then the queue
goes into the registry and a detached worker starts the runs; this command follows the sweep
(one line per start and end) until every run ended: exit 0 when all succeeded, 1 otherwise.
Ctrl-C, a closed terminal or even SIGKILL leave the sweep running (`olmo-tui runs --sweep NAME`).
"""

from __future__ import annotations

import argparse
import json
import shlex
import sqlite3
import sys
import time
from typing import List

from engine.cli_args import split_overrides
from engine.config import ConfigError
from engine.errors import UserError, without_controls

from ..core import exit_codes
from ..core.backends.base import BackendError, get_backend
from ..core.launch.command_preview import launch_command
from ..core.runs.registry import Registry, RegistryError, RunRecord, runs_root
from ..core.sweeps.sweep import SweepSpec, Variant, check_webhook_env, config_notify, default_name, first_line, \
    load_spec_file, parse_axis, parse_notify, plan

FOLLOW_POLL_S = 1.0


def _err(message: str) -> None:
    print(without_controls(message), file=sys.stderr, flush=True)


def sweep_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="olmo-tui sweep", allow_abbrev=False,
        description="Launch every variant of a grid of overrides through a queue (at most --max-parallel at once).")
    parser.usage = "olmo-tui sweep [SWEEP_FILE.toml] [--preset NAME | --config FILE] [--sweep A.B=V1,V2 ...] " \
                   "[--sweep-zip A.B=V1,V2 ...] [--max-parallel N] [overrides] ..."
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--preset", help="the base preset")
    source.add_argument("--config", help="the base config file (e.g. a run's config.toml)")
    parser.add_argument("--set", action="append", default=[], metavar="A.B=V", help="an override for every variant")
    parser.add_argument("--sweep", action="append", default=[], metavar="A.B=V1,V2",
                        help="a grid axis (repeatable: the grid is their product), or a sweep file")
    parser.add_argument("--sweep-file", metavar="FILE.toml", help="a sweep file (the same as giving it first)")
    parser.add_argument("--sweep-zip", action="append", default=[], metavar="A.B=V1,V2",
                        help="a paired axis: all --sweep-zip axes step together (same number of values)")
    parser.add_argument("--max-parallel", type=int, metavar="N", help="runs at once (default 1; the rest wait)")
    parser.add_argument("--name", help="the sweep's name (default: <run name>-sweep-<time>)")
    parser.add_argument("--notify-cmd", metavar="COMMAND",
                        help="run this command (split like a shell would, run without one) on each end/stall")
    parser.add_argument("--notify-webhook-env", metavar="VAR",
                        help="POST each event to the URL held by environment variable VAR (the URL is never stored)")
    parser.add_argument("--dry-run", action="store_true", help="list the variants and their commands, launch nothing")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument("--detach", action="store_true", help="queue, start the worker, print the sweep name, return")
    return parser


def spec_from_args(args: argparse.Namespace, extras: List[str]) -> SweepSpec:
    files = [f for f in (args.file, args.sweep_file) if f]
    axes = []
    for value in args.sweep:
        if "=" not in value and value.endswith(".toml"):
            files.append(value)
        else:
            axes.append(value)
    if len(files) > 1:
        raise ConfigError.one("sweep", f"give one sweep file, not {len(files)}")
    spec = load_spec_file(files[0]) if files else SweepSpec()
    if args.preset or args.config:
        spec.preset, spec.config = args.preset, args.config
    spec.overrides += [o if o.startswith("--") else f"--{o}" for o in args.set] + split_overrides(extras)
    spec.grid += [parse_axis(a, "--sweep") for a in axes]
    spec.zipped += [parse_axis(a, "--sweep-zip") for a in args.sweep_zip]
    if args.max_parallel is not None:
        spec.max_parallel = args.max_parallel
    if args.name:
        spec.name = args.name
    if args.notify_cmd or args.notify_webhook_env:
        notify = {"command": shlex.split(args.notify_cmd) if args.notify_cmd else []}
        if args.notify_webhook_env:
            notify["webhook_env"] = args.notify_webhook_env
        spec.notify = parse_notify(notify)
    return spec


def engine_command(variant: Variant) -> List[str]:
    probe = RunRecord(id="<run id>", name=variant.run_name, backend=variant.cfg.launch.backend,
                      run_dir=str(runs_root() / "<run id>"))
    try:
        return get_backend(variant.cfg.launch.backend).command(probe, variant.cfg)
    except (BackendError, Exception):  # a backend that cannot build offline: the headless command says enough
        return []


def print_dry_run(spec: SweepSpec, variants: List[Variant], name: str, as_json: bool) -> None:
    rows = [{"index": v.index, "run_name": v.run_name, "changes": dict(v.changes),
             "command": launch_command(spec.preset, spec.config, [*spec.overrides, *v.overrides]), "engine_command": engine_command(v)} for v in variants]
    if as_json:
        print(json.dumps({"sweep": name, "max_parallel": spec.max_parallel, "variants": rows}, indent=2))
        return
    _err(f"# sweep {name}: {len(variants)} variants, at most {spec.max_parallel} at once")
    for row in rows:
        print(f"{row['index'] + 1:>3}  {row['run_name']}\n     {shlex.join(row['command'])}")


def follow_sweep(name: str, registry: Registry) -> int:
    """One line per run start and end until all ended; 0 if all succeeded, else 1. Restarts
    the worker should it die meanwhile (it only reads the registry itself)."""
    from ..core.launch.sweep_queue import ensure_workers

    seen = {}
    looks = 0
    while True:
        looks += 1
        if looks % 10 == 0:
            ensure_workers(registry)
        runs = registry.of_sweep(name)
        for run in runs:
            if seen.get(run.id) != run.status:
                seen[run.id] = run.status
                why = f": {run.message}" if run.terminal and run.message and run.status != "succeeded" else ""
                _err(f"[sweep {name}] {run.name} ({run.id}) {run.status}{why}")
        if runs and all(run.terminal for run in runs):
            failed = [run for run in runs if run.status != "succeeded"]
            _err(f"sweep {name}: {len(runs) - len(failed)} of {len(runs)} succeeded")
            return exit_codes.OK if not failed else exit_codes.JOB_FAILED
        time.sleep(FOLLOW_POLL_S)


def cmd_sweep(argv: List[str]) -> int:
    # The sweep file is the first argument when given: not an argparse positional, which would
    # also swallow an override holding a space ("--trainer.max_duration={value: 3, unit: steps}").
    file = argv[0] if argv and not argv[0].startswith("-") and argv[0].endswith(".toml") else None
    args, extras = sweep_parser().parse_known_args(argv[1:] if file else argv)
    args.file = file
    try:
        spec = spec_from_args(args, extras)
        if spec.notify is None:  # the --notify-* flags and a sweep file's [notify] win over launch.notify
            spec.notify = config_notify(spec)
        variants = plan(spec)
    except ConfigError as exc:
        _err(first_line(exc))
        return exit_codes.USAGE
    name = spec.name or default_name(variants)
    if args.dry_run:
        print_dry_run(spec, variants, name, args.json)
        return exit_codes.OK
    try:
        check_webhook_env(spec)
    except ConfigError as exc:
        _err(first_line(exc))
        return exit_codes.USAGE
    from ..core.launch.sweep_queue import queue_sweep, spawn_worker

    registry = Registry()
    try:
        runs = queue_sweep(name, spec, variants, registry=registry, warn=lambda w: _err(f"warning: {w}"))
    except ConfigError as exc:
        _err(first_line(exc))
        return exit_codes.USAGE
    except UserError as exc:  # the launch pre-flight refused a variant: nothing was queued
        _err(f"error: {exc}")
        return exit_codes.USAGE
    except BackendError as exc:
        _err(f"error: {exc}")
        return exit_codes.LAUNCH
    except (RegistryError, OSError, sqlite3.Error) as exc:
        _err(f"error: cannot queue the sweep: {exc}")
        return exit_codes.LAUNCH
    try:
        pid = spawn_worker(name)
    except BackendError as exc:
        _err(f"error: {exc} (the queue is kept: `olmo-tui runs --sweep {name}` starts its worker again)")
        return exit_codes.LAUNCH
    _err(f"sweep {name}: {len(runs)} runs queued, at most {spec.max_parallel} at once; worker pid {pid}")
    if args.detach:
        print(json.dumps({"sweep": name, "runs": [r.id for r in runs], "worker_pid": pid}) if args.json else name,
              flush=True)
        return exit_codes.OK
    try:
        return follow_sweep(name, registry)
    except KeyboardInterrupt:
        _err(f"\nsweep {name} keeps going; see it with: olmo-tui runs --sweep {name}")
        return exit_codes.INTERRUPTED


# On the plain launch command these make it a sweep; the notify flags alone make it a sweep of
# one run, so that the sweep worker watches it and calls the hook.
SWEEP_FLAGS = ("--sweep", "--sweep-zip", "--sweep-file", "--notify-cmd", "--notify-webhook-env")


def wants_sweep(argv: List[str]) -> bool:
    """The plain launch command with --sweep/--sweep-zip (or a notify flag) is a sweep."""
    return any(arg.split("=", 1)[0] in SWEEP_FLAGS for arg in argv)


