"""Headless launch (`olmo-tui --preset NAME` without --dry-run).

Placeholder until the run manager lands: prints the command that would run.
"""

from __future__ import annotations

import shlex
import sys

from engine.config import ExperimentConfig

from . import exit_codes


def launch_headless(cfg: ExperimentConfig, args, argv) -> int:
    print("launching is not available yet; the engine command would be:", file=sys.stderr)
    print(shlex.join(["olmo-train", cfg.run_name, *argv]))
    return exit_codes.LAUNCH
