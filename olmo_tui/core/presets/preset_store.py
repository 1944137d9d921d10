"""Saving user presets with tomlkit, so comments and key order of the source survive."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Optional

import tomlkit
from tomlkit.items import Table

from engine.atomic import write_atomic
from engine.config import ConfigError
from engine.config.presets import PresetRef, check_preset_name, list_presets, user_dir


class PresetExists(ConfigError):
    """Saving would replace an existing preset; ask the user, then pass overwrite=True."""


def _set_in_document(doc: Any, dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    container = doc
    for part in parts[:-1]:
        if part not in container or not hasattr(container[part], "keys"):
            container[part] = tomlkit.table()
        container = container[part]
    last = parts[-1]
    if value is None:
        if last in container:
            del container[last]
        return
    if last in container and isinstance(container[last], Table) and isinstance(value, dict):
        for key, sub in value.items():
            _set_in_document(container[last], key, sub)
        return
    container[last] = value


def save_user_preset(
    name: str,
    changes: Dict[str, Any],
    source: Optional[PresetRef] = None,
    description: Optional[str] = None,
    overwrite: bool = False,
) -> Path:
    """Write <user presets>/<name>.toml: the source preset's text with `changes` (dotted path ->
    value, None = remove) applied. Refuses to replace a preset unless overwrite=True."""
    check_preset_name(name)
    existing = {ref.name: ref for ref in list_presets()}
    if name in existing and not overwrite:
        kind = "built-in" if existing[name].builtin else "user"
        raise PresetExists.one("preset", f"a {kind} preset named {name!r} exists; confirm to replace it")
    doc = tomlkit.parse(source.path.read_text()) if source else tomlkit.document()
    for dotted, value in changes.items():
        _set_in_document(doc, dotted, value)
    if description is not None:
        doc["description"] = description
    target_dir = user_dir()
    target_dir.mkdir(parents=True, exist_ok=True)
    target = target_dir / f"{name}.toml"
    write_atomic(target, tomlkit.dumps(doc))  # never a half-written preset
    return target
