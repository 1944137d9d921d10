"""Field-level differences between two configs, as dotted paths and as override arguments
(the same `--a.b=v` syntax the headless mode takes), so applying the overrides to the first
config gives the second."""

from __future__ import annotations

from typing import Any, Dict, List

from engine.config import ExperimentConfig, format_override


def flatten(data: Dict[str, Any], prefix: str = "") -> Dict[str, Any]:
    """{'a': {'b': 1}} -> {'a.b': 1}; lists, scalars and empty tables are leaves."""
    flat: Dict[str, Any] = {}
    for key, value in data.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat.update(flatten(value, path + "."))
        else:
            flat[path] = value
    return flat


def diff(before: ExperimentConfig, after: ExperimentConfig) -> Dict[str, Any]:
    """Dotted paths whose value differs, mapped to the new value; a section switched off maps
    to None once (not each of its fields)."""
    old = flatten(before.model_dump(mode="json", exclude_none=True))
    new = flatten(after.model_dump(mode="json", exclude_none=True))
    full_new = flatten(after.model_dump(mode="json"))
    changed: Dict[str, Any] = {}
    for path, value in new.items():
        if old.get(path, object()) != value:
            changed[path] = value
    for path in old:
        if path in new:
            continue
        # Unset now: report the outermost section (or field) that became None.
        parts = path.split(".")
        for depth in range(1, len(parts) + 1):
            prefix = ".".join(parts[:depth])
            if prefix in full_new and full_new[prefix] is None:
                changed[prefix] = None
                break
    return changed


def as_overrides(changes: Dict[str, Any]) -> List[str]:
    return [format_override(path, value) for path, value in changes.items()]
