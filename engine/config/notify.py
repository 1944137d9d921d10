"""launch.notify: the optional hook called when a run ends (succeeded / failed), stalls, or
raises a stability alert (trainer.callbacks.stability_monitor: a loss spike, a NaN).

The engine ignores this section; the launcher (olmo_tui) reads it. A set hook makes the launch
a one-run sweep, so that the detached sweep worker watches the run and calls the hook
(olmo_tui/core/launch/notify.py sends, olmo_tui/core/launch/sweep_worker.py watches).

No secret lives here: `webhook_env` is the NAME of an environment variable that holds the URL,
read only when sending. A URL pasted in its place is refused without being repeated (webhook
URLs often embed a token).
"""

from __future__ import annotations

import re
from typing import List, Literal, Optional

from pydantic import Field, field_validator

from .base import Config

# Every event the hook can receive; sweep_done only ever fires for a sweep (a one-run sweep too).
NOTIFY_EVENTS = ("succeeded", "failed", "stalled", "alert", "sweep_done")
NotifyEvent = Literal["succeeded", "failed", "stalled", "alert", "sweep_done"]
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class NotifyConfig(Config):
    """Notification hook (optional): a command and/or a webhook called on the run's end or stall."""

    command: List[str] = Field(default_factory=list, description="Command run on each event, as an argv list "
                               "(no shell); the event arrives as JSON on its stdin. Empty = none.")
    webhook_env: Optional[str] = Field(None, description="NAME of the environment variable holding the webhook "
                                       "URL each event is POSTed to (the URL itself is never stored); unset = none.")
    events: List[NotifyEvent] = Field(default_factory=lambda: list(NOTIFY_EVENTS),
                                      description=f"Events that call the hook: {', '.join(NOTIFY_EVENTS)}.")
    stall_after_s: float = Field(600.0, gt=0, description="Seconds without a log line or metrics record "
                                 "before the run counts as stalled.")

    @field_validator("command")
    @classmethod
    def _argv(cls, value: List[str]) -> List[str]:
        if any(not part for part in value):
            raise ValueError("must be a list of non-empty strings (the argv; no shell is used)")
        return value

    @field_validator("webhook_env")
    @classmethod
    def _env_name(cls, value: Optional[str]) -> Optional[str]:
        # The message never repeats the value: a URL pasted here may carry a token.
        if value is not None and not ENV_NAME.match(value):
            raise ValueError("must name an environment variable (letters, digits, _), not hold the URL itself")
        return value

    @property
    def is_set(self) -> bool:
        """Whether there is anything to call."""
        return bool(self.command or self.webhook_env)
