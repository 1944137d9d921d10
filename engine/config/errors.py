"""User-facing config errors: each issue names the dotted field path(s) it is about."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Tuple

# The pydantic error type of a section's rule about one of its own fields (field_error below):
# issues_from_validation_error files it under section.field, so the form shows it at the field.
FIELD_ERROR = "section_field"


def field_error(name: str, message: str):
    """A PydanticCustomError for a section validator to raise about its field `name`."""
    from pydantic_core import PydanticCustomError  # here: this module stays light to import

    return PydanticCustomError(FIELD_ERROR, "{message}", {"field": name, "message": message})


# Documented exit code for usage and config errors (headless CLI and olmo-train).
EXIT_CONFIG_ERROR = 2


@dataclass(frozen=True)
class Issue:
    """One problem in a config. `paths` are dotted field names; cross-field rules name several."""

    paths: Tuple[str, ...]
    message: str

    def __str__(self) -> str:
        from engine.errors import one_line  # torch-free and tiny

        where = ", ".join(self.paths) if self.paths else "config"
        return one_line(f"{where}: {self.message}")


@dataclass
class ConfigError(Exception):
    """Raised for any user mistake in presets, overrides or config files."""

    issues: list[Issue] = field(default_factory=list)

    @classmethod
    def one(cls, path: str, message: str) -> "ConfigError":
        return cls([Issue((path,) if path else (), message)])

    def __str__(self) -> str:
        return "\n".join(str(issue) for issue in self.issues)

    def lines(self) -> Iterable[str]:
        return (f"error: {issue}" for issue in self.issues)
