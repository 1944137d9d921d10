"""One registry per kind of component; built-ins and extensions register the same way.

A component is a name, a pydantic config model (its own fields, validated like any built-in
section) and a builder. The builder is a callable or a "module:attr" reference resolved on first
use: the module that registers stays torch-free, so the app (which must not import torch) can
import it to learn the fields, while the torch code is imported only by the engine's builders.

Registering changes the schema: each kind is bound to a section of the experiment config
(engine/extensions/schema.py), whose choices and sub-sections follow the registry. Torch-free.
"""

from __future__ import annotations

import importlib
import re
from dataclasses import dataclass
from typing import Callable, Dict, Iterator, List, Optional, Tuple, Type, Union

from pydantic import BaseModel

from ..errors import ConfigError

KINDS = ("callback", "attention", "mlp", "norm", "block", "loss", "optimizer", "scheduler",
         "data_source", "train_module")
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,47}$")

Builder = Union[str, Callable]


@dataclass(frozen=True)
class Component:
    kind: str
    name: str
    config: Type[BaseModel]  # its own fields (an empty Config when it has none)
    build: Builder  # callable, or "module:attr" imported on first use
    description: str
    origin: Optional[str]  # the extension that registered it; None for built-ins

    def builder(self) -> Callable:
        """The builder itself (imports a "module:attr" reference)."""
        if callable(self.build):
            return self.build
        module, _, attr = self.build.partition(":")
        try:
            return getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError) as exc:
            where = f"extension {self.origin}" if self.origin else "the engine"
            raise ConfigError.one(self.kind, f"{self.kind} {self.name!r} ({where}): cannot load its builder "
                                  f"{self.build!r}: {exc}") from None

    @property
    def has_fields(self) -> bool:
        return bool(self.config.model_fields)


class Registry:
    """The components of one kind, in registration order (built-ins first)."""

    def __init__(self, kind: str):
        self.kind = kind
        self._components: Dict[str, Component] = {}

    def __contains__(self, name: str) -> bool:
        return name in self._components

    def __iter__(self) -> Iterator[Component]:
        return iter(list(self._components.values()))

    def names(self) -> List[str]:
        return list(self._components)

    def get(self, name: str) -> Component:
        return self._components[name]

    def add(self, component: Component) -> bool:
        """Add a component; False if the same one is already here (an extension imported twice)."""
        old = self._components.get(component.name)
        if old is not None:
            if old.origin == component.origin and old.config.__qualname__ == component.config.__qualname__:
                self._components[component.name] = component  # the same extension, loaded again
                return False
            who = f"extension {old.origin}" if old.origin else "a built-in"
            raise ConfigError.one("extensions", f"{self.kind} {component.name!r} is already registered by {who}: "
                                  "pick another name")
        self._components[component.name] = component
        return True

    def remove(self, name: str) -> None:
        self._components.pop(name, None)


REGISTRIES: Dict[str, Registry] = {kind: Registry(kind) for kind in KINDS}

# The extension being imported (engine/extensions/loader.py pushes it) and the components it
# registered so far: its origin is recorded on each, and nothing is committed unless it imports.
_importing: List[Tuple[str, List[Component]]] = []


def _empty_config() -> Type[BaseModel]:
    from ..base import Config

    return Config


def register(kind: str, name: str, build: Builder, config: Optional[Type[BaseModel]] = None,
             description: str = "") -> Component:
    """Register a component of `kind` under `name` (see engine/extend.py for each kind's builder)."""
    if kind not in REGISTRIES:
        raise ConfigError.one("extensions", f"unknown component kind {kind!r}; kinds: {', '.join(KINDS)}")
    if not _NAME.match(name):
        raise ConfigError.one("extensions", f"{kind} name {name!r}: use lower-case letters, digits and '_' "
                              "(it becomes a config field)")
    if config is not None and not (isinstance(config, type) and issubclass(config, BaseModel)):
        raise ConfigError.one("extensions", f"{kind} {name!r}: config must be a pydantic model class")
    if not (callable(build) or (isinstance(build, str) and ":" in build)):
        raise ConfigError.one("extensions", f"{kind} {name!r}: build must be a callable or 'module:attr'")
    description = description or ((config.__doc__ or "").strip().splitlines() or [""])[0] if config else description
    component = Component(kind, name, config or _empty_config(), build, description,
                          _importing[-1][0] if _importing else None)
    if _importing:  # committed by the loader once the whole extension imported cleanly
        _importing[-1][1].append(component)
    else:
        commit([component])
    return component


def commit(new: List[Component]) -> None:
    """Add components to their registries and the schema (all or nothing)."""
    added = []
    try:
        for component in new:
            if REGISTRIES[component.kind].add(component):
                added.append(component)
    except ConfigError:
        for component in added:
            REGISTRIES[component.kind].remove(component.name)
        raise
    for listener in _LISTENERS if added else ():
        listener(added)
    _GENERATION[0] += bool(added)


def generation() -> int:
    """Changes whenever components are added: what a cache of the schema's shape is keyed by."""
    return _GENERATION[0]


_GENERATION = [0]


# Told of every commit (schema.py reshapes the config sections the kinds are bound to).
_LISTENERS: List[Callable[[List[Component]], None]] = []


def components(kind: str) -> Registry:
    return REGISTRIES[kind]
