"""Helpers for tests that run the console entry points as real subprocesses.

A plain module, not conftest.py: with several conftest.py files in the suite, `from conftest
import ...` can pick up another directory's conftest."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run_cli(*args: str, env: dict | None = None, timeout: float = 60, module: str = "olmo_tui"):
    """Run a console entry point in a real subprocess (python -m), capturing output."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", module, *args], capture_output=True, text=True, cwd=REPO,
        env=full_env, timeout=timeout,
    )
