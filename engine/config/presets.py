"""TOML presets: built-in ones in the repo's presets/ folder, user ones in the XDG config dir.

A preset is an ExperimentConfig written as TOML, plus two optional top-level keys:
`extends = "other-preset"` (start from another preset, then apply this file on top) and
`description = "..."` (one line shown in lists).
"""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Sequence

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from .errors import ConfigError

if TYPE_CHECKING:  # the schema is imported by resolve() only: listing and reading presets stays light
    from .experiment import ExperimentConfig

META_KEYS = ("extends", "description")
PRESET_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
REPO_PRESETS = Path(__file__).resolve().parents[2] / "presets"


def builtin_dir() -> Path:
    return Path(os.environ.get("OLMO_TUI_PRESETS_DIR", REPO_PRESETS))


def user_dir() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "olmo-tui" / "presets"


@dataclass(frozen=True)
class PresetRef:
    name: str
    path: Path
    builtin: bool


def check_preset_name(name: str) -> str:
    """A preset name is a plain file stem: no separators, no '..', no leading dot."""
    if not PRESET_NAME.match(name) or ".." in name or name.endswith(".toml"):
        raise ConfigError.one(
            "preset", f"invalid preset name {name!r}: use letters, digits, '.', '_' or '-' (at most 64), "
            "no path separators"
        )
    return name


def list_presets() -> List[PresetRef]:
    """All presets, built-in first; a user preset with a built-in's name shadows it."""
    found: Dict[str, PresetRef] = {}
    for directory, builtin in ((builtin_dir(), True), (user_dir(), False)):
        if directory.is_dir():
            for path in sorted(directory.glob("*.toml")):
                if PRESET_NAME.match(path.stem):
                    found[path.stem] = PresetRef(path.stem, path, builtin)
    return sorted(found.values(), key=lambda ref: (not ref.builtin, ref.name))


def find_preset(name: str) -> PresetRef:
    check_preset_name(name)
    refs = {ref.name: ref for ref in list_presets()}
    if name not in refs:
        import difflib

        close = difflib.get_close_matches(name, list(refs), n=3, cutoff=0.4)
        hint = f"; did you mean {' or '.join(close)}?" if close else ""
        raise ConfigError.one("preset", f"no preset named {name!r}{hint} (see `olmo-tui presets`)")
    return refs[name]


def read_toml(path: Path) -> Dict[str, Any]:
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError.one(str(path), f"invalid TOML: {exc}") from None
    except OSError as exc:
        raise ConfigError.one(str(path), f"cannot read: {exc.strerror}") from None


def deep_merge(base: Dict[str, Any], top: Dict[str, Any]) -> Dict[str, Any]:
    """Tables merge key by key; any other value (lists included) in `top` replaces the base's."""
    merged = dict(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _resolve_file(path: Path, chain: tuple) -> Dict[str, Any]:
    data = read_toml(path)
    parent = data.get("extends")
    body = {k: v for k, v in data.items() if k not in META_KEYS}
    if parent is None:
        return body
    if not isinstance(parent, str):
        raise ConfigError.one("extends", f"{path.name}: 'extends' must be a preset name")
    if parent in chain:
        raise ConfigError.one("extends", f"preset cycle: {' -> '.join(chain + (parent,))}")
    return deep_merge(_resolve_file(find_preset(parent).path, chain + (parent,)), body)


def preset_data(name: str) -> Dict[str, Any]:
    """Raw config data of a preset with its `extends` chain applied (not yet validated)."""
    return _resolve_file(find_preset(name).path, (name,))


def preset_description(name: str) -> str:
    data = read_toml(find_preset(name).path)
    return str(data.get("description", ""))


def config_file_data(path: str) -> Dict[str, Any]:
    file = Path(path).expanduser()
    if not file.is_file():
        raise ConfigError.one("config", f"no such config file: {path}")
    return _resolve_file(file, (file.stem,))


def resolve(preset: Optional[str] = None, config_file: Optional[str] = None,
            overrides: Sequence[str] = ()) -> ExperimentConfig:
    """Preset or config file, then overrides, then validation. Raises ConfigError."""
    from .experiment import ExperimentConfig, load_experiment
    from .overrides import apply_overrides

    if preset and config_file:
        raise ConfigError.one("preset", "give either --preset or --config, not both")
    data = config_file_data(config_file) if config_file else preset_data(preset) if preset else {}
    return load_experiment(apply_overrides(data, overrides, ExperimentConfig))


def to_toml(cfg: ExperimentConfig) -> str:
    """The resolved config as TOML (unset optional fields are omitted, so it round-trips)."""
    import tomlkit

    return tomlkit.dumps(cfg.model_dump(mode="json", exclude_none=True))
