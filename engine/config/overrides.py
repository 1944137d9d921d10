"""Dotted overrides: `--a.b.c=value`, `a.b.c=value` and the flag form `--a.b` (= true).

Values are YAML literals (`1e-3`, `[a, b]`, `'{value: 100, unit: steps}'`). Keys are checked
against the schema *before* anything is validated, so an unknown key is reported with its full
dotted path and the closest valid names. Setting a field under an optional section that is unset
(`--train_module.ac_config.mode=full`) creates that section with its defaults.
"""

from __future__ import annotations

import difflib
import re
import types
import typing
from typing import Any, List, Sequence, Tuple, Type

from pydantic import BaseModel

from .base import admits_bool
from .errors import ConfigError

PathSegments = Tuple[str, ...]


def parse_override(arg: str) -> Tuple[PathSegments, Any]:
    """Split one override argument into (path segments, parsed value)."""
    text = arg[2:] if arg.startswith("--") else arg
    key, has_value, raw = text.partition("=")
    segments = tuple(part.strip().replace("-", "_") for part in key.split("."))
    if not key.strip() or any(not part for part in segments):
        raise ConfigError.one(key or arg, f"cannot read override {arg!r}: expected --section.field=value")
    if not has_value:
        return segments, True  # flag form: --trainer.no_checkpoints
    import yaml  # here, not at the top: only a command line with overrides pays for it

    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as exc:
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise ConfigError.one(".".join(segments), f"cannot parse value {raw!r}: {problem}") from None
    if isinstance(value, str):
        value = _number_or_text(value)
    return segments, value


_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")


def _number_or_text(value: str) -> Any:
    # YAML 1.1 reads '1e-3' (no dot) as a string; users mean a number.
    if _NUMBER.match(value.strip()):
        number = float(value)
        return int(number) if number.is_integer() and "." not in value and "e" not in value.lower() else number
    return value


def _unwrap_optional(annotation: Any) -> Any:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return annotation


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _type_name(annotation: Any) -> str:
    return getattr(annotation, "__name__", None) or str(annotation).replace("typing.", "")


def check_path(schema: Type[BaseModel], segments: PathSegments) -> List[Any]:
    """Check a dotted path against the schema; return the annotation at each segment."""
    annotations: List[Any] = []
    current: Any = schema
    for depth, segment in enumerate(segments):
        here = ".".join(segments[: depth + 1])
        parent = ".".join(segments[:depth]) or "the config"
        current = _unwrap_optional(current)
        origin = typing.get_origin(current)
        if _is_model(current):
            fields = current.model_fields
            if segment not in fields:
                close = difflib.get_close_matches(segment, list(fields), n=3, cutoff=0.5)
                hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
                raise ConfigError.one(
                    ".".join(segments), f"unknown field '{segment}'{hint} ({parent} has: {', '.join(fields)})"
                )
            current = fields[segment].annotation
        elif origin in (dict, typing.Dict):
            current = typing.get_args(current)[1]
        elif origin in (list, typing.List, tuple, typing.Tuple):
            if not segment.isdigit():
                raise ConfigError.one(here, f"{parent} is a list; index it with a number, e.g. {parent}.0")
            args = typing.get_args(current)
            current = args[0] if args else Any
        else:
            raise ConfigError.one(
                here, f"{parent} is a value ({_type_name(current)}), not a section: set it as --{parent}=..."
            )
        annotations.append(current)
    return annotations


def _set(data: dict, segments: PathSegments, annotations: List[Any], value: Any) -> None:
    container: Any = data
    for depth, segment in enumerate(segments[:-1]):
        child_is_list = typing.get_origin(_unwrap_optional(annotations[depth])) in (list, typing.List)
        key: Any = int(segment) if isinstance(container, list) else segment
        if isinstance(container, list):
            if key > len(container):
                raise ConfigError.one(".".join(segments[: depth + 1]), f"index {key} is past the end (length {len(container)})")
            if key == len(container):
                container.append({})
        elif container.get(key) is None:
            container[key] = [] if child_is_list else {}  # unset optional section: create it
        container = container[key]
        if not isinstance(container, (dict, list)):
            raise ConfigError.one(".".join(segments[: depth + 1]), f"holds {container!r}, not a section")
    last: Any = segments[-1]
    if isinstance(container, list):
        last = int(last)
        if last > len(container):
            raise ConfigError.one(".".join(segments), f"index {last} is past the end (length {len(container)})")
        if last == len(container):
            container.append(value)
            return
    container[last] = value


def apply_overrides(data: dict, overrides: Sequence[str], schema: Type[BaseModel]) -> dict:
    """Return a copy of raw config data with every override applied (schema-checked keys)."""
    import copy

    result = copy.deepcopy(data)
    problems = []
    # `extensions` first, then import them: their components' fields are keys of the schema.
    _apply(result, [arg for arg in overrides if _sets_extensions(arg)], schema, problems)
    if not problems:
        from .extensions.loader import ensure_loaded

        ensure_loaded(result)  # a failure is its one line: the fields it would bring are unknown
    _apply(result, [arg for arg in overrides if not _sets_extensions(arg)], schema, problems)
    if problems:
        raise ConfigError(problems)
    return result


def _apply(result: dict, overrides: Sequence[str], schema: Type[BaseModel], problems: list) -> None:
    for arg in overrides:
        try:
            segments, value = parse_override(arg)
            annotations = check_path(schema, segments)
            if "=" not in arg and not admits_bool(annotations[-1]):
                dotted = ".".join(segments)
                raise ConfigError.one(dotted, f"needs a value: --{dotted}=VALUE (the bare flag form "
                                      "--section.field is only for true/false fields)")
            if _unwrap_optional(annotations[-1]) is str and isinstance(value, (int, float, bool)):
                value = arg.partition("=")[2].strip()  # --run_name=123 means the text '123'
            _set(result, segments, annotations, value)
        except ConfigError as exc:
            problems.extend(exc.issues)


def _sets_extensions(arg: str) -> bool:
    return arg.lstrip("-").split("=", 1)[0].split(".")[0].strip() == "extensions"


def set_path(data: dict, dotted: str, value: Any, schema: Type[BaseModel]) -> None:
    """Set one dotted field in raw data in place (used by the app's form)."""
    segments = tuple(dotted.split("."))
    _set(data, segments, check_path(schema, segments), value)


def format_override(dotted: str, value: Any) -> str:
    """The override argument that sets `dotted` to `value` (inverse of parse_override)."""
    if value is True:
        return f"--{dotted}=true"
    import yaml

    dumped = yaml.safe_dump(value, default_flow_style=True, width=10_000).strip()
    if dumped.endswith("\n..."):
        dumped = dumped[: -len("\n...")]
    if dumped.endswith("..."):
        dumped = dumped[:-3].strip()
    return f"--{dotted}={dumped}"
