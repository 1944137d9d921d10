"""The `stub` fixture: the local backend runs the contract's stand-in engine
(tests/launcher_stub/stub_engine.py) under real torchrun, so launcher, registry and app tests
handle real processes without training a model. A plain module (see cli_helpers.py); import
the fixture by name: `from stub_backend import stub  # noqa: F401`."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from engine import run_lock
from olmo_tui.core.backends.base import set_backend
from olmo_tui.core.backends.local import LocalBackend
from olmo_tui.core.runs.registry import runs_root

STUB_DIR = Path(__file__).resolve().parent / "launcher_stub"


@pytest.fixture
def stub(monkeypatch):
    monkeypatch.setenv("PYTHONPATH", str(STUB_DIR))
    set_backend("local", LocalBackend(engine_module="stub_engine"))
    yield
    set_backend("local", None)
    for run_dir in runs_root().glob("*"):  # a failed assertion must not leave a long run going
        for pid in set(run_lock.holders(run_dir)) - {os.getpid()}:
            os.kill(pid, signal.SIGKILL)
