"""The architecture's walls: the config and the app's core import neither torch nor textual."""

import json
import subprocess
import sys

import pytest

FORBIDDEN = ("torch", "textual")


@pytest.mark.parametrize(
    "modules",
    [
        ["engine.config"],
        ["olmo_tui.core"],
        ["olmo_tui.cli", "olmo_tui.core.catalog", "olmo_tui.core.configdiff", "olmo_tui.core.preset_store"],
    ],
)
def test_no_torch_or_textual(modules):
    code = (
        "import importlib, json, sys\n"
        f"for m in {modules!r}: importlib.import_module(m)\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'textual'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == []


def test_core_modules_are_all_clean():
    """Every module under olmo_tui.core, imported together, stays clean."""
    code = (
        "import importlib, json, pkgutil, sys\n"
        "import olmo_tui.core as core\n"
        "for info in pkgutil.walk_packages(core.__path__, 'olmo_tui.core.'): importlib.import_module(info.name)\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'textual'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == []
