"""The registries shape the schema: each kind of component is bound to one config section.

- A choice section (ChoiceSection) picks one component by its selector field (`model.mlp.kind`,
  `train_module.optim.name`, `dataset.kind`, ...): the selector's allowed values are the
  registered names, and each component with fields of its own adds an optional sub-section named
  after it (`model.mlp.relu2.*`), filled with its defaults when chosen.
- Callbacks are not a choice: each adds a sub-section of `trainer.callbacks`. A built-in's is
  always there (switched off by `enabled = false`); an extension's only where the config sets it,
  so a config stays valid where its extension is not loaded.

Registering after the schema is built changes the bound sections in place and rebuilds them and
every section that contains them, so every front end (overrides, did-you-mean, the form, dry-run,
diff, sweeps) sees the new fields as built-in ones. Torch-free.
"""

from __future__ import annotations

import typing
from dataclasses import dataclass
from typing import Any, ClassVar, Dict, Iterable, List, Literal, Optional, Set, Type

from pydantic import BaseModel, Field, model_validator
from pydantic.fields import FieldInfo

from ..base import Config
from ..errors import ConfigError

from .registry import _LISTENERS, REGISTRIES, Component


class ChoiceSection(Config):
    """A config section whose selector field picks one registered component of a kind."""

    _kind: ClassVar[str] = ""
    _selector: ClassVar[str] = "kind"

    @model_validator(mode="before")
    @classmethod
    def _chosen_section(cls, data: Any) -> Any:
        # The chosen component's own sub-section is there with its defaults (dry-run shows it).
        if isinstance(data, dict):
            name = data.get(cls._selector, cls.model_fields[cls._selector].default)
            registry = REGISTRIES[cls._kind]
            if isinstance(name, str) and name in registry and registry.get(name).has_fields \
                    and data.get(name) is None:
                data = {**data, name: {}}
        return data

    def component(self) -> Component:
        return REGISTRIES[self._kind].get(getattr(self, self._selector))

    def component_config(self) -> BaseModel:
        """The chosen component's own config (an empty one when it has no fields)."""
        component = self.component()
        return getattr(self, component.name) if component.has_fields else component.config()


@dataclass
class _Binding:
    kind: str
    section: Type[BaseModel]
    selector: Optional[str]  # None: callbacks (every component is a sub-section)
    shared: Set[str]  # the section's own fields, which no component may shadow


_BINDINGS: Dict[str, _Binding] = {}
_ROOT: List[Type[BaseModel]] = []  # the experiment config (set_root), rebuilt last


def set_root(root: Type[BaseModel]) -> None:
    _ROOT[:] = [root]


def bind(kind: str, section: Type[BaseModel], selector: Optional[str] = None) -> None:
    """Bind `kind` to `section` (called once, where the section is defined)."""
    if selector is not None:
        assert issubclass(section, ChoiceSection), section
        section._kind, section._selector = kind, selector
    shared = {name for name in section.model_fields if name != selector}
    binding = _Binding(kind, section, selector, shared)
    _BINDINGS[kind] = binding
    _apply(binding)
    section.model_rebuild(force=True)


def _field(annotation: Any, **kwargs: Any) -> FieldInfo:
    return FieldInfo.from_annotated_attribute(annotation, Field(**kwargs))


def _apply(binding: _Binding) -> None:
    section, fields = binding.section, binding.section.__pydantic_fields__
    components = list(REGISTRIES[binding.kind])
    for component in components:
        if component.name in binding.shared:
            raise ConfigError.one("extensions", f"{binding.kind} name {component.name!r} is a field of "
                                  f"{section.__name__} already: pick another name")
    if binding.selector is not None:
        old = fields[binding.selector]
        fields[binding.selector] = _field(Literal[tuple(c.name for c in components)], default=old.default,
                                          description=old.description)
    for component in components:
        if binding.selector is None:
            builtin = component.origin is None
            fields[component.name] = _field(
                component.config if builtin else Optional[component.config],
                **({"default_factory": component.config} if builtin else {"default": None}),
                description=component.description + ("" if builtin else f" (extension {component.origin})"))
        elif component.has_fields:
            fields[component.name] = _field(
                Optional[component.config], default=None,
                description=f"Settings of {binding.kind} {component.name!r}: {component.description}")


def components_added(added: Iterable[Component]) -> None:
    changed = []
    for kind in {c.kind for c in added}:
        binding = _BINDINGS.get(kind)
        if binding is not None:  # else bound later, when its section's module is imported
            _apply(binding)
            changed.append(binding.section)
    if changed:
        rebuild(changed)


_LISTENERS.append(components_added)


def _sections_in(annotation: Any) -> List[Type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [s for arg in typing.get_args(annotation) for s in _sections_in(arg)]


def rebuild(changed: List[Type[BaseModel]]) -> None:
    """Rebuild the changed sections and, innermost first, every section that contains one."""
    contains: Dict[type, bool] = {}

    def visit(cls: Type[BaseModel]) -> bool:
        if cls in contains:
            return contains[cls]
        contains[cls] = cls in changed  # a cycle never happens in the schema; this ends it anyway
        inner = [visit(s) for info in cls.model_fields.values() for s in _sections_in(info.annotation)]
        contains[cls] = cls in changed or any(inner)
        if contains[cls]:
            cls.model_rebuild(force=True)
        return contains[cls]

    if _ROOT:
        visit(_ROOT[0])


def chosen_components(cfg: BaseModel) -> List[tuple]:
    """(dotted path, component) of every component `cfg` uses: each bound choice section's pick,
    and each callback section that is set."""
    found = []

    def walk(section: BaseModel, prefix: str) -> None:
        if isinstance(section, ChoiceSection):
            found.append((f"{prefix}{section._selector}", section.component()))
        binding = _BINDINGS.get("callback")
        for name in type(section).model_fields:
            value = getattr(section, name)
            if binding is not None and type(section) is binding.section and value is not None:
                found.append((f"{prefix}{name}", REGISTRIES["callback"].get(name)))
            if isinstance(value, BaseModel):
                walk(value, f"{prefix}{name}.")

    walk(cfg, "")
    return found


def choice_section(kind: str, name: str, default: str, doc: str, module: str) -> Type[ChoiceSection]:
    """A section that only picks a component of `kind` by its `kind` field, bound to the registry."""
    from pydantic import create_model

    section = create_model(name, __base__=ChoiceSection, __doc__=doc, __module__=module,
                           kind=(str, Field(default, description=f"Which {kind.replace('_', ' ')}: {default} "
                                            "(built-in) or one registered by an extension.")))
    bind(kind, section, "kind")
    return section
