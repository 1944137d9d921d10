"""`olmo-tui diff RUN_A RUN_B [--json]` and `olmo-tui compare RUN... [--json]`.

diff prints what turns RUN_A's config into RUN_B's, as override arguments (one per line):
exactly what `olmo-tui relaunch RUN_A ...` would take to reproduce RUN_B. compare prints each
run's final and best metrics, and its overrides relative to the first run (the baseline).
Both work for any run in the registry, finished, failed or queued; an unknown RUN is a usage
error (exit 2, one line).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import List, Optional

from engine.config import ConfigError
from engine.run_dir import custom_metrics
from engine.errors import without_controls

from ..core.views import compare
from ..core import exit_codes
from ..core.backends.base import BackendError
from ..core.runs.registry import Registry, RunRecord
from ..core.launch.run_manager import run_config


def _err(message: str) -> None:
    print(without_controls(message), file=sys.stderr)


def _find(registry: Registry, refs: List[str]):
    """The runs named, or the exit code after one line saying why not (2 unknown, 3 registry broken)."""
    from .runs import lookup_run

    runs = []
    for ref in refs:
        run = lookup_run(registry, ref)
        if isinstance(run, int):
            return run
        runs.append(run)
    return runs


def _configs(runs: List[RunRecord]):
    try:
        return [run_config(run) for run in runs]
    except ConfigError as exc:
        _err(f"error: a run's config.toml no longer validates: {next(iter(exc.lines()), exc)}")
        return exit_codes.USAGE
    except BackendError as exc:  # config.toml missing
        _err(f"error: {exc}")
        return exit_codes.LAUNCH


def cmd_diff(argv: List[str]) -> int:
    parser = argparse.ArgumentParser(prog="olmo-tui diff",
                                     description="The fields in which RUN_B's config differs from RUN_A's, as overrides.")
    parser.add_argument("run_a", help="run id, id prefix or name")
    parser.add_argument("run_b", help="run id, id prefix or name")
    parser.add_argument("--json", action="store_true", help="{a, b, changes: {path: value}, overrides: [...]}")
    args = parser.parse_args(argv)
    runs = _find(Registry(), [args.run_a, args.run_b])
    if isinstance(runs, int):
        return runs
    configs = _configs(runs)
    if isinstance(configs, int):
        return configs
    changes = compare.config_diff(*configs)
    overrides = compare.diff_overrides(*configs)
    code = compare.extension_code_diff(*runs)  # same config, other code: said too (stderr)
    if args.json:
        print(json.dumps({"a": runs[0].id, "b": runs[1].id, "changes": changes, "overrides": overrides,
                          "extension_code": code}, indent=2))
    else:
        for override in overrides:
            print(override)
        for key, (a, b) in code.items():
            _err(f"extension {key}: code differs (sha256 {(a or 'none')[:12]} -> {(b or 'none')[:12]}, "
                 "the runs' extensions/ folders hold each copy)")
        if not overrides:
            _err(f"{runs[0].id} and {runs[1].id} have the same config (run_name aside)")
    return exit_codes.OK


def _fmt(entry: Optional[dict], digits: str = ".4g") -> str:
    return "-" if not entry else f"{entry['value']:{digits}}"


def cmd_compare(argv: List[str]) -> int:
    parser = argparse.ArgumentParser(prog="olmo-tui compare",
                                     description="Final and best metrics of runs; overrides relative to the first.")
    parser.add_argument("runs", nargs="+", help="run ids, id prefixes or names (the first is the baseline)")
    parser.add_argument("--json", action="store_true", help="one JSON array, one object per run")
    args = parser.parse_args(argv)
    runs = _find(Registry(), args.runs)
    if isinstance(runs, int):
        return runs
    configs = _configs(runs)
    if isinstance(configs, int):
        return configs
    rows = [compare.summary(compare.load_curves(run), configs[0], cfg) for run, cfg in zip(runs, configs, strict=True)]
    if args.json:
        print(json.dumps(rows, indent=2))
        return exit_codes.OK
    # An extension's metrics get a column each (their final values), after the built-in ones.
    custom = [m for m in custom_metrics([{k: 0.0 for k in row["final"]} for row in rows]) if m not in compare.METRICS]
    # Each named held-out set (a mixture's sources, dataset.eval_sets) gets its eval-loss column.
    domains = sorted({m for row in rows for m in row["final"] if compare.DOMAIN_EVAL.match(m)})
    header = ["RUN", "STATUS", "STEP", "LOSS", "BEST LOSS", "EVAL LOSS",
              *[compare.metric_label(m).upper() for m in domains], "TOK/S", "MFU",
              *[name.upper() for name in custom], "VS BASELINE"]
    table = [header]
    for i, row in enumerate(rows):
        final, best = row["final"], row["best"]
        table.append([row["id"], row["status"], str(final.get("step", "-")), _fmt(final.get("loss")),
                      _fmt(best.get("loss")), _fmt(final.get("eval_loss")), *[_fmt(final.get(m)) for m in domains],
                      _fmt(final.get("tps"), ".3g"),
                      _fmt(final.get("mfu"), ".1f"), *[_fmt(final.get(name)) for name in custom],
                      "(baseline)" if i == 0 else " ".join(row["overrides_vs_baseline"]) or "(same config)"])
    widths = [max(len(line[i]) for line in table) for i in range(len(header))]
    for line in table:
        print("  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip())
    return exit_codes.OK
