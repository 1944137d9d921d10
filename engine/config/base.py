"""Shared building blocks of the experiment schema: the strict base model, dtypes and Duration."""

from __future__ import annotations

import re
import types
import typing
from enum import Enum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from .errors import field_error


def _union_args(annotation: Any) -> tuple:
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return tuple(arg for arg in typing.get_args(annotation) if arg is not type(None))
    return (annotation,)


def admits_bool(annotation: Any) -> bool:
    """Whether a field of this type holds true/false (bool, Optional[bool], Any, a union with bool):
    the fields the bare flag form `--section.field` may set."""
    return any(arg is Any or arg is bool for arg in _union_args(annotation))


def is_number(annotation: Any) -> bool:
    """int, float, or an optional / union of them."""
    return all(arg in (int, float) for arg in _union_args(annotation))


# numpy's legacy seeding (engine.train.trainer.seed_all) takes 0 .. 2**32 - 1; a larger seed
# would pass validation and fail in the run.
MAX_SEED = 2**32 - 1


class Config(BaseModel):
    """Base of every config section: unknown keys are errors, assignments are validated, floats
    are finite (every float field is a rate, scale or size: inf or nan passes a `gt=0` bound
    and fails only inside the run), and a number is never read from true/false."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, use_enum_values=False,
                              allow_inf_nan=False)

    @model_validator(mode="before")
    @classmethod
    def _no_bool_for_numbers(cls, data: Any) -> Any:
        # pydantic's lax mode reads true as 1 and 1.0: `n_layers = true` in a file, or
        # `--optim.lr=true`, would quietly train a one-layer model or with lr 1.0.
        if isinstance(data, dict):
            for name, value in data.items():
                info = cls.model_fields.get(name) if isinstance(name, str) else None
                if isinstance(value, bool) and info is not None and is_number(info.annotation):
                    raise field_error(name, f"got {str(value).lower()}, expected a number")
        return data


# Fields holding a file-system path say so in their json_schema_extra (`path_kind(...)`), so
# engine/config/paths.py finds every one of them from the schema itself. The kinds:
#   "local"    always a path on the machine(s) the job runs on;
#   "task"     a path when it ends in .jsonl, else a built-in name (engine.evals.mc_tasks);
#   "program"  a path when it holds a '/', else a name looked up on PATH;
#   "job"      a path inside the Beaker job's container, never this machine's;
#   "module"   a path when it holds a '/' or ends in .py, else an importable module's name.
PATH_KIND = "path_kind"
PATH_KINDS = ("local", "task", "program", "job", "module")


def path_kind(kind: str = "local") -> dict:
    """The json_schema_extra of a path field (see PATH_KINDS)."""
    assert kind in PATH_KINDS, kind
    return {PATH_KIND: kind}


class DType(str, Enum):
    float32 = "float32"
    bfloat16 = "bfloat16"
    float16 = "float16"

    @property
    def num_bytes(self) -> int:
        return 4 if self is DType.float32 else 2


class DurationUnit(str, Enum):
    steps = "steps"
    tokens = "tokens"
    epochs = "epochs"


_DURATION_TEXT = re.compile(r"^\s*([0-9][0-9_.eE+]*)\s*([a-z]+)\s*$")
_UNIT_ALIASES = {"step": "steps", "steps": "steps", "token": "tokens", "tokens": "tokens",
                 "epoch": "epochs", "epochs": "epochs", "ep": "epochs"}


class Duration(Config):
    """A length of training: `value` steps, tokens or epochs."""

    value: int = Field(gt=0, description="How many units (an integer > 0).")
    unit: DurationUnit = Field(DurationUnit.steps, description="Unit of `value`: steps, tokens or epochs.")

    @model_validator(mode="before")
    @classmethod
    def _from_text(cls, data: Any) -> Any:
        # "100 steps", "2e9tokens", "1 epoch" read better on a command line than a mapping.
        if isinstance(data, str):
            match = _DURATION_TEXT.match(data.lower())
            if not match or match.group(2) not in _UNIT_ALIASES:
                raise ValueError(
                    f"cannot read duration {data!r}: write '<n> steps', '<n> tokens' or '<n> epochs',"
                    " or {value: <n>, unit: steps|tokens|epochs}"
                )
            number = float(match.group(1).replace("_", ""))
            if number != int(number):
                raise ValueError(f"duration {data!r} must be a whole number")
            return {"value": int(number), "unit": _UNIT_ALIASES[match.group(2)]}
        if isinstance(data, dict) and isinstance(data.get("value"), float) and data["value"].is_integer():
            # YAML reads 1e9 as a float; a whole float is a fine token count.
            return {**data, "value": int(data["value"])}
        return data

    def __str__(self) -> str:
        return f"{self.value:,} {self.unit.value}"

    @classmethod
    def steps(cls, n: int) -> "Duration":
        return cls(value=n, unit=DurationUnit.steps)

    @classmethod
    def tokens(cls, n: int) -> "Duration":
        return cls(value=n, unit=DurationUnit.tokens)

    @classmethod
    def epochs(cls, n: int) -> "Duration":
        return cls(value=n, unit=DurationUnit.epochs)
