"""The schema's path fields, and making the relative ones absolute against one directory.

A relative path means "from the current directory", but the processes of a run do not share
the user's: olmo-tui's local launcher starts torchrun in the run dir, a SLURM job script `cd`s
there, and a config.toml read again later (relaunch, resume) may be read from anywhere. So the
front doors turn every relative local path into an absolute one against the directory the user
typed it in, before the pre-flight checks it and before config.toml records it: what is
checked is what runs. olmo-tui does it for the backends whose jobs see this machine's files
(olmo_tui/core/launch/preflight.py); `olmo-train` does it against its own working directory, which it
never changes (engine/cli.py).

The fields are found from the schema, not listed here: each path field carries
`json_schema_extra=path_kind(KIND)` (engine/config/base.py says what the kinds mean). Left as
they are: `${VAR}/...` (its variable decides, expanded where the data is read), `~/...` (the
same from every directory), URLs and hub ids (`scheme://...`, e.g. `hf://org/model`), absolute
paths, built-in task names and bare program names; kind "job" (a Beaker container's paths)
is never rewritten. Torch-free.
"""

from __future__ import annotations

import os
import re
import typing
from pathlib import Path
from typing import TYPE_CHECKING, Dict, Iterator, List, Optional, Tuple, Type

from pydantic import BaseModel

from .base import PATH_KIND

if TYPE_CHECKING:
    from .experiment import ExperimentConfig

_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def field_path_kind(model: Type[BaseModel], name: str) -> Optional[str]:
    extra = model.model_fields[name].json_schema_extra
    return extra.get(PATH_KIND) if isinstance(extra, dict) else None


def _sections_in(annotation) -> Iterator[Type[BaseModel]]:
    """The config classes inside a field's type (Optional[X], List[X], ...)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield annotation
    for arg in typing.get_args(annotation):
        yield from _sections_in(arg)


def schema_path_fields(model: Optional[Type[BaseModel]] = None, prefix: str = "") -> Dict[str, str]:
    """Every path field of the schema, dotted name -> kind (a list of sections adds `.N`:
    `launch.beaker.mounts.N.source`; a table of named sections `.NAME`: `dataset.sources.NAME.paths`)."""
    if model is None:
        from .experiment import ExperimentConfig

        model = ExperimentConfig
    found: Dict[str, str] = {}
    for name, info in model.model_fields.items():
        kind = field_path_kind(model, name)
        if kind is not None:
            found[prefix + name] = kind
        for section in _sections_in(info.annotation):
            origin = typing.get_origin(info.annotation)
            key = "N." if origin is list else "NAME." if origin is dict else ""
            found.update(schema_path_fields(section, f"{prefix}{name}.{key}"))
    return found


def _path_values(section: BaseModel, prefix: str = "") -> Iterator[Tuple[BaseModel, str, str, str]]:
    """(section, field name, dotted name, kind) of every path field set in this config."""
    for name in type(section).model_fields:
        value = getattr(section, name)
        kind = field_path_kind(type(section), name)
        if kind is not None:
            yield section, name, prefix + name, kind
        elif isinstance(value, BaseModel):
            yield from _path_values(value, f"{prefix}{name}.")
        elif isinstance(value, (list, dict)):
            items = value.items() if isinstance(value, dict) else enumerate(value)
            for key, item in items:
                if isinstance(item, BaseModel):
                    yield from _path_values(item, f"{prefix}{name}.{key}.")


def is_relative(value: str, kind: str) -> bool:
    """Whether `value` of a field of `kind` is a path that depends on the current directory."""
    if kind == "job" or not value or value.startswith(("$", "~")):
        return False
    if os.path.isabs(value) or _URL.match(value):
        return False
    if kind == "task":
        return value.endswith(".jsonl")  # otherwise a built-in task's name
    if kind == "program":
        return "/" in value  # otherwise a command looked up on PATH, as a shell does
    if kind == "module":
        return "/" in value or value.endswith(".py")  # otherwise an importable module's name
    return True


def _values(value) -> List[str]:
    if isinstance(value, str):
        return [value]
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def local_paths(cfg: "ExperimentConfig", *, outside_launch: bool = True) -> List[Tuple[str, str]]:
    """(dotted field, value) of every path to a file or folder the job reads or writes (kinds
    local and task-file; not a Beaker container's, not a program), optionally leaving out the
    launch.* sections (which the launcher, not the job, reads)."""
    return [(dotted, value) for section, name, dotted, kind in _path_values(cfg)
            if kind in ("local", "task", "module") and not (outside_launch and dotted.startswith("launch."))
            for value in _values(getattr(section, name))
            if value and (kind not in ("task", "module") or is_relative(value, kind) or os.path.isabs(value))]


def relative_paths(cfg: "ExperimentConfig") -> List[Tuple[str, str]]:
    """(dotted field, value) of every relative local path in `cfg`, in schema order."""
    return [(dotted, value) for section, name, dotted, kind in _path_values(cfg)
            for value in _values(getattr(section, name)) if is_relative(value, kind)]


def absolute_paths(cfg: "ExperimentConfig", base: Optional[Path] = None) -> "ExperimentConfig":
    """A copy of `cfg` whose relative local paths are absolute against `base` (default: the
    current directory); `cfg` itself when it has none."""
    if not relative_paths(cfg):
        return cfg
    base = Path(base if base is not None else os.getcwd()).absolute()
    fixed = cfg.model_copy(deep=True)
    for section, name, _dotted, kind in list(_path_values(fixed)):
        value = getattr(section, name)

        def absolute(one: str) -> str:
            return str(base / one) if is_relative(one, kind) else one

        new = absolute(value) if isinstance(value, str) else \
            [absolute(v) if isinstance(v, str) else v for v in value] if isinstance(value, list) else value
        if new != value:
            setattr(section, name, new)  # validated again (validate_assignment)
    return fixed
