"""Multiple-choice tasks read from JSONL: one question per line, a context and its choices.

Two line layouts are understood, so common benchmark files drop in without conversion:

    {"context": "...", "choices": ["...", "..."], "gold": 1}        this project's own layout
    {"ctx": "...", "endings": ["...", "..."], "label": "1"}         HellaSwag's layout

A choice is the text that continues the context as written (`context + choice`), so it usually
starts with a space. HellaSwag endings carry no leading space; the loader adds one.

A task is named either by a built-in name (a file `engine/evals/tasks/<name>.jsonl`) or by a
path to a `.jsonl` file, whose stem then names the metrics (`eval/downstream/<stem>/acc`).
Torch-free: the app may load tasks to show them.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import List, Tuple

from ..errors import UserError

BUILTIN_DIR = Path(__file__).resolve().parent / "tasks"
TASKS_FIELD = "trainer.callbacks.downstream_evaluator.tasks"
# Task names become metric-key segments (eval/downstream/<name>/acc): no slashes or spaces.
_TASK_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


@dataclass(frozen=True)
class MCInstance:
    context: str
    choices: Tuple[str, ...]
    gold: int  # index into choices


@dataclass(frozen=True)
class MCTask:
    name: str
    source: Path
    instances: Tuple[MCInstance, ...]


def builtin_task_names() -> List[str]:
    return sorted(path.stem for path in BUILTIN_DIR.glob("*.jsonl"))


def resolve_task(spec: str) -> Tuple[str, Path]:
    """(metric name, file) for a built-in task name or a path to a JSONL file."""
    if spec in builtin_task_names():
        return spec, BUILTIN_DIR / f"{spec}.jsonl"
    path = Path(spec).expanduser()
    if path.suffix == ".jsonl":
        if not path.is_file():
            raise UserError(TASKS_FIELD, f"task file '{spec}' does not exist")
        if not _TASK_NAME.match(path.stem):
            raise UserError(TASKS_FIELD, f"task file name '{path.name}' must be letters, digits, '_', "
                            "'.' or '-' (it names the metrics)")
        return path.stem, path
    known = ", ".join(builtin_task_names()) or "(none)"
    raise UserError(TASKS_FIELD, f"unknown task '{spec}'; built-in tasks: {known}; or give a path to a .jsonl file")


def _parse_line(record: object) -> MCInstance:
    """One JSON object -> MCInstance; ValueError names what is wrong."""
    if not isinstance(record, dict):
        raise ValueError("each line must be a JSON object")
    if "context" in record:
        context, choices, gold = record.get("context"), record.get("choices"), record.get("gold")
        names = ("context", "choices", "gold")
    elif "ctx" in record:  # HellaSwag: endings follow the context after a space
        context, endings, gold = record.get("ctx"), record.get("endings"), record.get("label")
        choices = [" " + e.lstrip() for e in endings] if isinstance(endings, list) and all(
            isinstance(e, str) for e in endings) else endings
        names = ("ctx", "endings", "label")
        if isinstance(gold, str) and gold.strip().isdigit():
            gold = int(gold)
    else:
        raise ValueError("needs keys context/choices/gold (or HellaSwag's ctx/endings/label)")
    if not isinstance(context, str):
        raise ValueError(f"'{names[0]}' must be a string")
    if not isinstance(choices, list) or len(choices) < 2 or not all(isinstance(c, str) and c for c in choices):
        raise ValueError(f"'{names[1]}' must be a list of at least 2 non-empty strings")
    if not isinstance(gold, int) or isinstance(gold, bool) or not 0 <= gold < len(choices):
        raise ValueError(f"'{names[2]}' must be an integer index into the {len(choices)} choices")
    return MCInstance(context=context, choices=tuple(choices), gold=gold)


def load_task_file(name: str, path: Path, limit: int | None = None) -> MCTask:
    """Read and validate a task file; bad lines are a UserError naming the file and line."""
    instances: List[MCInstance] = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(TASKS_FIELD, f"cannot read task file '{path}': {exc}") from None
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            instances.append(_parse_line(json.loads(line)))
        except ValueError as exc:  # json.JSONDecodeError is a ValueError too
            raise UserError(TASKS_FIELD, f"{path}:{number}: {exc}") from None
        if limit is not None and len(instances) >= limit:
            break
    if not instances:
        raise UserError(TASKS_FIELD, f"task file '{path}' holds no instances")
    return MCTask(name=name, source=path, instances=tuple(instances))


def load_task(spec: str, limit: int | None = None) -> MCTask:
    """A task by built-in name or path; `limit` keeps the first N instances."""
    name, path = resolve_task(spec)
    return load_task_file(name, path, limit)
