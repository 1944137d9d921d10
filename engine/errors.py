"""Errors a user can fix (a bad data path, a vocab mismatch, an unwritable folder).

The entry points report them as one line naming the setting, exit with code 2 and print no
traceback. Anything else is a bug or a failed job and keeps its traceback (exit code 1).
"""

from __future__ import annotations

import re
from typing import Optional

EXIT_USER_ERROR = 2
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def one_line(text: str) -> str:
    """`text` with its control characters (newline, carriage return, escape, NUL, ...) written
    as Python escapes (\\n, \\x1b): a user value echoed in a one-line message can neither
    break the line nor drive the terminal."""
    return _CONTROL.sub(lambda match: repr(match.group())[1:-1], text)


def without_controls(text: str) -> str:
    """one_line for text whose own line breaks are meant (narration of several lines)."""
    return "\n".join(one_line(line) for line in text.split("\n"))


class UserError(Exception):
    def __init__(self, field: Optional[str], message: str):
        super().__init__(message)
        self.field = field
        self.message = message

    def __str__(self) -> str:
        return one_line(f"{self.field}: {self.message}" if self.field else self.message)


class DataError(UserError):
    """Missing, corrupt or mismatched training data."""
