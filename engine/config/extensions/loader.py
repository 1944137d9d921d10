"""Importing the extensions a config names (its top-level `extensions` list).

An entry is an importable module name (`my_components`), a path to a `.py` file or a path to a
package folder (one with `__init__.py`); a relative path is read from the current directory
(front ends make it absolute before a run records it). Importing one registers its components
(engine/extend.py); all of them or none: a failure registers nothing.

Rules, each a one-line ConfigError (exit 2) naming the entry:
- it must import cleanly (a syntax error says the file and line);
- it must not import torch when imported: the app learns its fields by importing it and never
  imports torch, so torch code goes behind "module:attr" builders, imported by the engine only;
- two entries may not bring two different modules of the same name.

A run's ranks import the copies snapshotted in the run dir (engine/extensions/snapshot.py):
`use_run_snapshot(run_dir)` makes every entry that the snapshot holds load from there. Torch-free.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional

from ..errors import ConfigError

from . import registry


@dataclass(frozen=True)
class Extension:
    key: str  # the entry: a module name, or an absolute path
    module: str  # the top-level module imported
    source: Path  # its file (a .py) or its package folder
    sys_path: Optional[str]  # the folder put on sys.path to import it (None: importable as is)


_LOADED: Dict[str, Extension] = {}
_SNAPSHOT: Dict[str, Any] = {}  # key -> manifest entry, and "dir"


def is_path(entry: str) -> bool:
    return "/" in entry or entry.endswith(".py") or entry.startswith(("~", "."))


def entry_key(entry: str, base: Optional[Path] = None) -> str:
    """The entry as recorded: an absolute path, or the module name."""
    if not is_path(entry):
        return entry
    path = Path(entry).expanduser()
    return str(path if path.is_absolute() else Path(base or os.getcwd()) / path)


def entries_of(data: Any) -> List[str]:
    """The `extensions` entries of raw config data (a lone string is a list of one)."""
    value = data.get("extensions") if isinstance(data, dict) else None
    if isinstance(value, str):
        return [value]
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def ensure_loaded(data: Any) -> List[Extension]:
    """Import every extension raw config data names (each once per process)."""
    return [load(entry) for entry in entries_of(data)]


def loaded() -> Dict[str, Extension]:
    return dict(_LOADED)


def _locate(entry: str, key: str) -> Extension:
    snap = _SNAPSHOT.get(key)
    if snap is not None:  # the run's own copy
        folder = Path(_SNAPSHOT["dir"])
        return Extension(key, snap["module"], folder / snap["copy"], str(folder))
    if not is_path(entry):
        try:
            spec = importlib.util.find_spec(entry.split(".")[0])
        except (ImportError, ValueError):
            spec = None
        if spec is None:
            raise ConfigError.one("extensions", f"extension {entry!r}: no module named {entry.split('.')[0]!r} "
                                  "(give an importable module, or a path to a .py file or a package folder)")
        origin = Path(spec.origin) if spec.origin and spec.origin != "namespace" else None
        folder = Path(list(spec.submodule_search_locations)[0]) if spec.submodule_search_locations else None
        return Extension(key, entry, folder or origin or Path(entry), None)
    path = Path(key)
    if path.is_file() and path.suffix == ".py":
        return Extension(key, path.stem, path, str(path.parent))
    if path.is_dir():
        if not (path / "__init__.py").is_file():
            raise ConfigError.one("extensions", f"extension {entry!r}: a folder must be a Python package "
                                  "(add an __init__.py)")
        return Extension(key, path.name, path, str(path.parent))
    raise ConfigError.one("extensions", f"extension {entry!r}: no such .py file or package folder ({key})")


def load(entry: str) -> Extension:
    key = entry_key(entry)
    if key in _LOADED:
        return _LOADED[key]
    ext = _locate(entry, key)
    clash = sys.modules.get(ext.module.split(".")[0])
    if clash is not None and ext.sys_path is not None:
        where = getattr(clash, "__file__", None) or ""
        if not where.startswith(str(ext.source)):
            raise ConfigError.one("extensions", f"extension {entry!r}: a module named {ext.module!r} is already "
                                  f"imported from {where or 'elsewhere'}: rename one of them")
    torch_before = "torch" in sys.modules
    if ext.sys_path is not None and ext.sys_path not in sys.path:
        sys.path.insert(0, ext.sys_path)
    registry._importing.append((key, []))
    try:
        importlib.import_module(ext.module)
        if not torch_before and "torch" in sys.modules:
            raise ConfigError.one("extensions", f"extension {entry!r} imports torch when imported: import it "
                                  "inside the builders (\"module:attr\" references) so the app stays torch-free")
        registry.commit(registry._importing[-1][1])
    except ConfigError:
        _forget(ext)
        raise
    except SyntaxError as exc:
        _forget(ext)
        raise ConfigError.one("extensions", f"extension {entry!r}: syntax error in {exc.filename}, line "
                              f"{exc.lineno}: {exc.msg}") from None
    except BaseException as exc:  # noqa: B902 (an extension may raise anything; SystemExit included)
        _forget(ext)
        if isinstance(exc, KeyboardInterrupt):
            raise
        first = (str(exc).strip().splitlines() or [""])[0]
        raise ConfigError.one("extensions", f"extension {entry!r} failed to import: "
                              f"{type(exc).__name__}: {first}") from None
    finally:
        registry._importing.pop()
    _LOADED[key] = ext
    return ext


def _forget(ext: Extension) -> None:
    """Drop a failed import's modules, so a fixed file is imported afresh."""
    top = ext.module.split(".")[0]
    for name in [n for n in sys.modules if n == top or n.startswith(top + ".")]:
        del sys.modules[name]


def use_run_snapshot(run_dir: Path) -> bool:
    """Load the extensions a run dir's snapshot holds from there (see snapshot.py), before its
    config is read; False if it has none."""
    from .snapshot import SNAPSHOT_DIR, read_manifest

    folder = Path(run_dir) / SNAPSHOT_DIR
    manifest = read_manifest(folder)
    if manifest is None:
        return False
    _SNAPSHOT.clear()
    _SNAPSHOT["dir"] = str(folder)
    _SNAPSHOT.update({item["key"]: item for item in manifest})
    return True


def check_listed(cfg: Any) -> List[tuple]:
    """(field, message) for each component the config uses from an extension it does not list."""
    from .schema import chosen_components

    listed = {entry_key(e) for e in getattr(cfg, "extensions", [])}
    return [(path, f"{component.kind} {component.name!r} comes from extension {component.origin}, which "
             "`extensions` does not list: add it")
            for path, component in chosen_components(cfg)
            if component.origin is not None and component.origin not in listed]


def prepare_snapshot(cfg: Any, run_dir: Path, parent_run_dir: Optional[Path] = None) -> None:
    """A launcher's part, before the run starts: a relaunch or resume gets its parent's snapshot
    (the same code), a new run a copy of the extensions `cfg` names as imported now."""
    if not getattr(cfg, "extensions", None):
        return
    from .snapshot import copy_snapshot, write_snapshot

    if parent_run_dir is not None and copy_snapshot(parent_run_dir, run_dir):
        return
    keys = {entry_key(entry) for entry in cfg.extensions}
    write_snapshot([ext for key, ext in _LOADED.items() if key in keys], run_dir)
