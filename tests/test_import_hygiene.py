"""The architecture's walls, two ways:

- import-linter contracts (.importlinter) over the static import graph, every import counted,
  including those inside functions: engine never imports olmo_tui; torch and textual stay out
  of engine.config and olmo_tui.core; textual only under olmo_tui.app; the core knows no front
  end; the app uses the core, never the CLI; no import cycles between sibling modules;
- a fresh interpreter importing the real modules and reading sys.modules (what actually loads,
  whatever the static graph says).
"""

import ast
import configparser
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def loaded_after(modules, prefixes):
    """Top-level packages among `prefixes` that importing `modules` in a fresh interpreter loads."""
    code = (
        "import importlib, json, sys\n"
        f"for m in {modules!r}: importlib.import_module(m)\n"
        f"print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in {tuple(prefixes)!r})))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    return json.loads(out.stdout)


def test_import_linter_contracts_hold():
    lint = Path(sys.executable).with_name("lint-imports")
    assert lint.exists(), "import-linter is part of the test extra (pip install -e .[test])"
    out = subprocess.run([str(lint), "--no-cache"], capture_output=True, text=True, cwd=REPO,
                         env={**os.environ, "NO_COLOR": "1"})
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]
    assert "0 broken" in out.stdout, out.stdout[-2000:]


def test_every_package_is_in_the_contracts():
    """olmo_tui holds exactly the three rooms (core, cli, app) and its entry module: a front end
    or helper module beside them would sit outside the walls. Each room is named where it should
    be, so a new module inside one is covered at once."""
    config = configparser.ConfigParser()
    config.read(REPO / ".importlinter")
    top = {p.stem for p in (REPO / "olmo_tui").iterdir() if p.suffix == ".py" or (p / "__init__.py").exists()}
    assert top == {"__init__", "__main__", "app", "cli", "core"}, sorted(top)
    listed = lambda contract, key: set(config[f"importlinter:contract:{contract}"][key].split())  # noqa: E731
    assert "olmo_tui.core" in listed("torch-free-rooms", "source_modules")
    assert "olmo_tui.cli" in listed("front-ends-torch-free", "source_modules") & listed("textual-only-in-app", "source_modules")
    assert "olmo_tui.cli" in listed("core-knows-no-front-end", "forbidden_modules") & listed("app-uses-core", "forbidden_modules")


def engine_imports_of(package: Path):
    """Every engine module named by an import under `package` (functions' own imports too)."""
    for path in package.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module and node.module.split(".")[0] == "engine":
                names = [f"{node.module}.{alias.name}" for alias in node.names]
                yield path, node.module, names
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.split(".")[0] == "engine":
                        yield path, alias.name, []


def test_olmo_tui_imports_only_the_torch_free_engine_modules():
    """The app, the CLI and the core reach the engine only through the modules the torch-free
    contract covers, so a new engine import cannot bring torch along unnoticed."""
    config = configparser.ConfigParser()
    config.read(REPO / ".importlinter")
    allowed = [m for m in config["importlinter:contract:torch-free-rooms"]["source_modules"].split()
               if m.startswith("engine.")]
    under = lambda module: any(module == a or module.startswith(a + ".") for a in allowed)  # noqa: E731
    outside = sorted({f"{path.relative_to(REPO)}: {module}" for path, module, names in engine_imports_of(REPO / "olmo_tui")
                      if not under(module) and not (module == "engine" and all(under(n) for n in names))})
    assert outside == []


def test_engine_cli_loads_no_app_package():
    """The issue's exact check: the engine's entry point never loads olmo_tui."""
    code = "import engine.cli, sys; assert not any(m.startswith('olmo_tui') for m in sys.modules)"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)


@pytest.mark.parametrize(
    "modules",
    [
        ["engine.config", "engine.cli_args"],
        ["olmo_tui.core"],
        ["olmo_tui.cli", "olmo_tui.core.presets.catalog", "olmo_tui.core.config.configdiff", "olmo_tui.core.presets.preset_store"],
    ],
)
def test_no_torch_or_textual(modules):
    assert loaded_after(modules, ("torch", "textual")) == []


def test_core_modules_are_all_clean():
    """Every module under olmo_tui.core, imported together, loads neither torch, textual nor a
    front end."""
    code = (
        "import importlib, json, pkgutil, sys\n"
        "import olmo_tui.core as core\n"
        "for info in pkgutil.walk_packages(core.__path__, 'olmo_tui.core.'): importlib.import_module(info.name)\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'textual')\n"
        "    or m.startswith(('olmo_tui.app', 'olmo_tui.cli')))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert json.loads(out.stdout) == []


def test_cli_modules_are_all_clean():
    """Every module of the headless front end (olmo_tui.cli), imported together, loads neither
    torch nor textual (the app opens only from inside main(), which this does not call)."""
    code = (
        "import importlib, json, pkgutil, sys\n"
        "import olmo_tui.cli as cli\n"
        "for info in pkgutil.walk_packages(cli.__path__, 'olmo_tui.cli.'): importlib.import_module(info.name)\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'textual'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert json.loads(out.stdout) == []


def test_app_screens_load_no_cli():
    """The app's screens (all of them) load the core, never the headless CLI modules."""
    code = (
        "import importlib, json, pkgutil, sys\n"
        "import olmo_tui.app.screens as screens\n"
        "for info in pkgutil.walk_packages(screens.__path__, 'olmo_tui.app.screens.'): importlib.import_module(info.name)\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith('olmo_tui.cli')"
        " or m.split('.')[0] == 'torch')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert json.loads(out.stdout) == []
