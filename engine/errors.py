"""Errors a user can fix (a bad data path, a vocab mismatch, an unwritable folder).

The entry points report them as one line naming the setting, exit with code 2 and print no
traceback. Anything else is a bug or a failed job and keeps its traceback (exit code 1).
"""

from __future__ import annotations

from typing import Optional

EXIT_USER_ERROR = 2


class UserError(Exception):
    def __init__(self, field: Optional[str], message: str):
        super().__init__(message)
        self.field = field
        self.message = message

    def __str__(self) -> str:
        return f"{self.field}: {self.message}" if self.field else self.message


class DataError(UserError):
    """Missing, corrupt or mismatched training data."""
