"""The config form without the drawing: the schema walked into a tree of field specs, the form's
state as raw config data, text <-> value conversion per field, and validation issues mapped to
the fields they are about. Torch- and textual-free, so every rule here is unit-testable.

The form never keeps its own copy of a value: its state is one raw-data dict (what a TOML
preset holds), edited one dotted path at a time and validated as a whole by
`engine.config.validate_experiment`, so the form, the raw TOML mode and the headless mode
always agree on what is valid.
"""

from __future__ import annotations

import copy
import types
import typing
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Dict, List, Literal, Optional, Sequence, Tuple, Type

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from engine.config import Duration, ExperimentConfig, Issue, parse_override, validate_experiment
from engine.config.overrides import format_override

# Widget kinds the app knows how to draw; every schema field maps to exactly one.
SECTION, INT, FLOAT, TEXT, BOOL, CHOICE, DURATION, LIST, MAPPING = (
    "section", "int", "float", "text", "bool", "choice", "duration", "list", "mapping"
)


@dataclass
class FieldSpec:
    """One node of the form: a section (with children) or a leaf value."""

    path: str  # dotted, e.g. "train_module.optim.lr"
    name: str
    kind: str
    description: str
    optional: bool = False  # None is allowed (an unset field, or a section switched off)
    choices: Tuple[str, ...] = ()  # CHOICE: allowed values
    item_kind: Optional[str] = None  # LIST: kind of each item (INT, FLOAT, TEXT or MAPPING)
    fixed_length: Optional[int] = None  # LIST from a Tuple[x, y]: exactly this many items
    model: Optional[Type[BaseModel]] = None  # SECTION: the pydantic class
    children: List["FieldSpec"] = field(default_factory=list)

    def walk(self):
        yield self
        for child in self.children:
            yield from child.walk()


def _unwrap_optional(annotation: Any) -> Tuple[Any, bool]:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return annotation, False


def _scalar_kind(annotation: Any) -> Optional[str]:
    if annotation is bool:
        return BOOL
    if annotation is int:
        return INT
    if annotation is float:
        return FLOAT
    if annotation is str:
        return TEXT
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return MAPPING  # a list item that is itself a section (e.g. a mount): edited as {k: v}
    return None


def _spec(path: str, name: str, annotation: Any, description: str) -> FieldSpec:
    inner, optional = _unwrap_optional(annotation)
    origin = typing.get_origin(inner)
    if inner is Duration:
        return FieldSpec(path, name, DURATION, description, optional)
    if isinstance(inner, type) and issubclass(inner, BaseModel):
        return FieldSpec(path, name, SECTION, description, optional, model=inner,
                         children=_children(inner, path))
    if origin is Literal:
        return FieldSpec(path, name, CHOICE, description, optional,
                         choices=tuple(str(a) for a in typing.get_args(inner)))
    if isinstance(inner, type) and issubclass(inner, Enum):
        return FieldSpec(path, name, CHOICE, description, optional,
                         choices=tuple(str(member.value) for member in inner))
    if inner is bool and optional:
        return FieldSpec(path, name, CHOICE, description, optional, choices=("true", "false"))
    if origin in (list, typing.List):
        (item,) = typing.get_args(inner)
        return FieldSpec(path, name, LIST, description, optional, item_kind=_scalar_kind(item) or TEXT)
    if origin in (tuple, typing.Tuple):
        args = typing.get_args(inner)
        return FieldSpec(path, name, LIST, description, optional, item_kind=_scalar_kind(args[0]) or TEXT,
                         fixed_length=len(args))
    if origin in (dict, typing.Dict):
        return FieldSpec(path, name, MAPPING, description, optional)
    kind = _scalar_kind(inner)
    if kind is None:
        raise TypeError(f"no form widget for {path}: {annotation!r}")
    return FieldSpec(path, name, kind, description, optional)


def _children(model: Type[BaseModel], prefix: str) -> List[FieldSpec]:
    specs = []
    for name, info in model.model_fields.items():
        path = f"{prefix}.{name}" if prefix else name
        specs.append(_spec(path, name, info.annotation, info.description or ""))
    return specs


def schema_tree(model: Type[BaseModel] = ExperimentConfig) -> FieldSpec:
    """The whole form: a root section whose children are the config's top-level fields."""
    return FieldSpec("", "config", SECTION, model.__doc__ or "", model=model, children=_children(model, ""))


def leaf_specs(root: FieldSpec) -> Dict[str, FieldSpec]:
    return {spec.path: spec for spec in root.walk() if spec.kind != SECTION}


# ---- raw data ----------------------------------------------------------------------------

def get_path(data: Dict[str, Any], path: str) -> Any:
    """Value at a dotted path of raw data; None when a section on the way is unset."""
    node: Any = data
    for part in path.split("."):
        if not isinstance(node, dict):
            return None
        node = node.get(part)
    return node


def set_path(data: Dict[str, Any], path: str, value: Any) -> None:
    parts = path.split(".")
    node = data
    for part in parts[:-1]:
        if not isinstance(node.get(part), dict):
            node[part] = {}
        node = node[part]
    node[parts[-1]] = value


def section_defaults(model: Type[BaseModel]) -> Dict[str, Any]:
    """Raw data of a section switched on: every field at its default (required ones left out)."""
    data: Dict[str, Any] = {}
    for name, info in model.model_fields.items():
        if info.default_factory is not None:
            value = info.default_factory()
        elif info.default is PydanticUndefined:
            continue
        else:
            value = info.default
        data[name] = _plain(value)
    return data


def _plain(value: Any) -> Any:
    """A default as TOML-able raw data (enums as their value, models as tables)."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, tuple):
        return list(value)
    return copy.deepcopy(value)


def fill_defaults(data: Dict[str, Any], section: FieldSpec) -> Dict[str, Any]:
    """Copy of raw data with every missing field of the present sections set to its default, so
    the form can show every field (TOML has no null: a missing optional field means unset)."""
    filled = dict(data)
    defaults = section_defaults(section.model) if section.model else {}
    for child in section.children:
        present = child.name in filled
        value = filled.get(child.name)
        if child.kind == SECTION:
            if value is None and present:
                continue
            if value is None:
                if child.optional:
                    filled[child.name] = None
                    continue
                value = defaults.get(child.name, {})
            if isinstance(value, dict):
                filled[child.name] = fill_defaults(value, child)
        elif not present:
            filled[child.name] = defaults.get(child.name)
    return filled


def strip_nones(data: Any) -> Any:
    """Raw data without unset fields (what a TOML file can hold)."""
    if isinstance(data, dict):
        return {k: strip_nones(v) for k, v in data.items() if v is not None}
    if isinstance(data, list):
        return [strip_nones(v) for v in data]
    return data


def config_data(cfg: ExperimentConfig) -> Dict[str, Any]:
    """Raw form data of a resolved config: every field, unset ones as None."""
    return cfg.model_dump(mode="json")


# ---- text <-> value ----------------------------------------------------------------------

def _yaml_value(text: str) -> Any:
    """The value a user means by `text`, read like an override value (YAML, '1e-3' a number)."""
    try:
        return parse_override(f"v={text}")[1]
    except Exception:  # unreadable YAML: keep the text, validation names the field and type
        return text


def parse_text(spec: FieldSpec, text: str) -> Any:
    """What an Input's text means for a leaf field. Unparseable text stays a string so that
    validation reports it beside the field ("got 'abc', expected an integer")."""
    stripped = text.strip()
    if stripped == "" and spec.optional:
        return None
    if spec.kind == TEXT:
        return text
    if spec.kind in (INT, FLOAT):
        return _yaml_value(stripped) if stripped else stripped
    if spec.kind == CHOICE:
        return stripped if stripped else None
    if spec.kind in (MAPPING, LIST):
        return _yaml_value(stripped) if stripped else ({} if spec.kind == MAPPING else [])
    return _yaml_value(stripped)


def parse_item(kind: str, text: str) -> Any:
    """One item of a list editor."""
    if kind == TEXT:
        return text
    return _yaml_value(text.strip())


def format_value(spec: FieldSpec, value: Any) -> str:
    """Text an Input shows for a value (inverse of parse_text for valid values)."""
    if value is None:
        return ""
    if spec.kind == TEXT or (spec.kind == CHOICE and isinstance(value, str)):
        # A choice is shown as itself: YAML would quote words it reads as booleans ('off', 'on').
        return str(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    return format_override("v", value)[len("--v="):]


def format_item(value: Any) -> str:
    if isinstance(value, str):
        return value
    return format_value(FieldSpec("", "", MAPPING, ""), value)


# ---- validation mapped to fields ----------------------------------------------------------

@dataclass
class FormValidation:
    config: Optional[ExperimentConfig]
    issues: List[Issue]
    by_field: Dict[str, List[Issue]]  # widget path -> issues to show beside it

    @property
    def ok(self) -> bool:
        return self.config is not None


def owner_path(issue_path: str, widget_paths: Sequence[str]) -> str:
    """The widget an issue path belongs to: the longest widget path that is the issue path or
    a prefix of it ('trainer.hard_stop.value' -> 'trainer.hard_stop'); else the issue path."""
    best = ""
    for path in widget_paths:
        if (issue_path == path or issue_path.startswith(path + ".")) and len(path) > len(best):
            best = path
    return best or issue_path


def named_fields(issue: Issue, widget_paths: Sequence[str]) -> List[str]:
    """The fields an issue involves: its own paths, and the fields of a section it points at
    that its message names ('model': 'd_model (128) must be divisible by n_heads (3)' names
    model.d_model and model.n_heads), so a cross-field rule written on a section marks each
    field it is about, not the section alone."""
    import re

    named: List[str] = []
    for path in issue.paths or ("",):
        owner = owner_path(path, widget_paths)
        named.append(owner)
        if owner in widget_paths and not any(p.startswith(owner + ".") for p in widget_paths):
            continue  # a leaf field: the issue is about it
        prefix = owner + "." if owner else ""
        for candidate in widget_paths:
            rest = candidate[len(prefix):]
            if candidate.startswith(prefix) and "." not in rest and candidate not in named \
                    and re.search(rf"(?<![\w.]){re.escape(rest)}(?!\w)|\b{re.escape(candidate)}\b", issue.message):
                named.append(candidate)
    return named


def validate_form(data: Dict[str, Any], widget_paths: Sequence[str]) -> FormValidation:
    cfg, issues = validate_experiment(data)
    by_field: Dict[str, List[Issue]] = {}
    for issue in issues:
        for path in named_fields(issue, widget_paths):
            by_field.setdefault(path, []).append(issue)
    return FormValidation(cfg, issues, by_field)


def changed_paths(data: Dict[str, Any], baseline: Dict[str, Any], specs: Sequence[FieldSpec]) -> List[str]:
    """Paths whose value differs from the baseline's (what the form marks). A section counts
    as changed only when it was switched on or off; its fields are compared one by one."""
    changed = []
    for spec in specs:
        now, before = get_path(data, spec.path), get_path(baseline, spec.path)
        if spec.kind == SECTION:
            if (now is None) != (before is None):
                changed.append(spec.path)
        elif _norm(now) != _norm(before):
            changed.append(spec.path)
    return changed


def same_value(a: Any, b: Any) -> bool:
    return _norm(a) == _norm(b) and type(a) is type(b) or (a is None and b is None)


def _norm(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_norm(v) for v in value]
    if isinstance(value, list):
        return [_norm(v) for v in value]
    if isinstance(value, dict):  # an unset key and a missing one are the same (TOML has no null)
        return {k: _norm(v) for k, v in value.items() if v is not None}
    return value
