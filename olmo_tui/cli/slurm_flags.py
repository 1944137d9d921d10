"""The headless CLI's SLURM step before a launch or a dry run (olmo_tui/cli/main.py calls it):

- the shared-filesystem rule (shared.py) as a config error (exit 2), before anything exists;
- `--dry-run` prints the exact job script on stdout (JSON with --json: script + config) and
  the per-node command on stderr, then exits 0.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Optional

from engine.config import ConfigError

from ..core import exit_codes
from ..core.runs.registry import new_run_id, runs_root
from ..core.backends.base import get_backend
from ..core.backends.slurm.shared import unshared_paths


def shared_paths_error(cfg, run_dir: Path) -> Optional[ConfigError]:
    outside = unshared_paths(cfg, run_dir)
    if not outside:
        return None
    field = "trainer.save_folder" if outside[0] != run_dir else "launch.slurm.shared_paths"
    marked = ", ".join(cfg.launch.slurm.shared_paths) or "none"
    return ConfigError.one(field, f"{outside[0]} is not under a shared path (launch.slurm.shared_paths: {marked}); "
                           "mark the filesystem the nodes share, e.g. --launch.slurm.shared_paths=[/shared]")


def slurm_preflight(cfg, args: argparse.Namespace) -> Optional[int]:
    run_id = new_run_id(cfg.run_name)
    run_dir = runs_root() / run_id
    dry_run = getattr(args, "dry_run", False)
    problem = shared_paths_error(cfg, run_dir)
    if problem is not None and not dry_run:
        for line in problem.lines():
            print(line, file=sys.stderr)
        return exit_codes.USAGE
    if not dry_run:
        return None
    backend = get_backend("slurm")
    script = backend.script(run_id, run_dir, cfg)
    if problem is not None:  # a dry run still shows the script, and what a launch would refuse
        for line in problem.lines():
            print(line.replace("error:", "warning: a launch would fail:", 1), file=sys.stderr)
    if getattr(args, "json", False):
        print(json.dumps({"script": script, "config": cfg.model_dump(mode="json")}, indent=2))
    else:
        sys.stdout.write(script)
    print(f"# SLURM job script for {cfg.launch.slurm.nodes} node(s) x {cfg.launch.nproc_per_node} rank(s) "
          f"(the run id is assigned at launch); submitted with: sbatch --parsable {run_dir}/job.sbatch",
          file=sys.stderr)
    return exit_codes.OK
