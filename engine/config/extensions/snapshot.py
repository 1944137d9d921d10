"""The run dir keeps a copy of each extension's source, so a run's ranks, its resume and its
relaunches run the code that ran first.

Layout: `<run dir>/extensions/` holds each extension's top-level module as imported (a `.py`
file or a package folder, `__pycache__` left out) and `manifest.json`: one entry per extension
with its config entry (`key`), the module name, the copy's name, where it was copied from and the
sha256 over its files (names and bytes). The folder is put on `sys.path` by the loader when a
run starts from it (loader.use_run_snapshot), so the copies shadow the originals.

The rule (docs/GUIDE.md, "Customizing components"): a run dir's snapshot is written once, when
the run is first prepared, and never refreshed: resuming runs the snapshot even after the
source was edited (the log says so, with both hashes), and a relaunch copies its parent's
snapshot. To run edited code, launch a new run. Torch-free.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional

from engine.run_dir import EXTENSIONS_DIR as SNAPSHOT_DIR
MANIFEST = "manifest.json"


def _files(source: Path) -> List[Path]:
    if source.is_file():
        return [source]
    return sorted(p for p in source.rglob("*") if p.is_file() and "__pycache__" not in p.parts
                  and p.suffix not in (".pyc", ".pyo"))


def source_hash(source: Path) -> str:
    digest = hashlib.sha256()
    for path in _files(source):
        digest.update(str(path.relative_to(source.parent)).encode() + b"\0")
        digest.update(path.read_bytes())
        digest.update(b"\0")
    return digest.hexdigest()


def read_manifest(folder: Path) -> Optional[List[Dict[str, Any]]]:
    try:
        return json.loads((Path(folder) / MANIFEST).read_text())
    except (OSError, ValueError):
        return None


def write_snapshot(extensions: Iterable, run_dir: Path) -> Optional[Path]:
    """Copy the loaded extensions (loader.Extension) into `run_dir`; keep an existing snapshot.
    Written to a temporary folder and renamed into place: ranks never see half of one."""
    extensions = list(extensions)
    folder = Path(run_dir) / SNAPSHOT_DIR
    if not extensions or (folder / MANIFEST).is_file():
        return folder if extensions else None
    # One staging folder per process: the ranks of a run all write at start, and a shared one was
    # removed or re-made under another rank's copy (FileExistsError on one rank, 1 run in 3).
    staging = Path(run_dir) / f".{SNAPSHOT_DIR}.tmp-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    manifest = []
    for ext in extensions:
        copy_name = ext.source.name
        if ext.source.is_dir():
            shutil.copytree(ext.source, staging / copy_name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(ext.source, staging / copy_name)
        manifest.append({"key": ext.key, "module": ext.module, "copy": copy_name, "source": str(ext.source),
                         "sha256": source_hash(staging / copy_name)})
    (staging / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    try:
        staging.rename(folder)
    except OSError:  # another rank renamed its copy first: theirs is the same code
        shutil.rmtree(staging, ignore_errors=True)
    return folder


def copy_snapshot(parent_run_dir: Path, run_dir: Path) -> bool:
    """A relaunch runs its parent's code: copy the parent's snapshot (False if it has none)."""
    source = Path(parent_run_dir) / SNAPSHOT_DIR
    if not (source / MANIFEST).is_file() or (Path(run_dir) / SNAPSHOT_DIR / MANIFEST).is_file():
        return False
    Path(run_dir).mkdir(parents=True, exist_ok=True)
    shutil.copytree(source, Path(run_dir) / SNAPSHOT_DIR, ignore=shutil.ignore_patterns("__pycache__"))
    return True


def changed_since(folder: Path) -> List[str]:
    """One line per snapshotted extension whose original source differs from the copy now."""
    lines = []
    for item in read_manifest(folder) or []:
        source = Path(item["source"])
        if not source.exists():
            continue
        now = source_hash(source)
        if now != item["sha256"]:
            lines.append(f"extension {item['key']} changed since this run's snapshot "
                         f"(sha256 {item['sha256'][:12]} -> {now[:12]}): running the snapshot in {folder}")
    return lines


def hashes(run_dir: Path) -> Dict[str, str]:
    """Extension entry -> sha256 of the code a run dir's snapshot holds (for `olmo-tui diff`)."""
    return {item["key"]: item["sha256"] for item in read_manifest(Path(run_dir) / SNAPSHOT_DIR) or []}

