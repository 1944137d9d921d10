"""The monitor's stability-alert banner: hidden until a metrics record carries alerts (the
engine's stability monitor, engine/run_dir.py's ALERTS_KEY), then one line: how many, and the
newest one's step, kind, action and message."""

from __future__ import annotations

from typing import Any, Dict, List, Tuple

from rich.markup import escape
from textual.widgets import Static

from engine.run_dir import record_alerts

ACTION_STYLE = {"warn": "bold yellow", "skip": "bold yellow", "stop": "bold red"}


class AlertBanner(Static):
    DEFAULT_CSS = """
    AlertBanner { height: auto; padding: 0 1; background: $error 25%; display: none; }
    """

    def __init__(self, **kwargs) -> None:
        super().__init__("", **kwargs)
        self.alerts: List[Tuple[Any, Dict[str, Any]]] = []  # (step, alert), oldest first

    def add(self, record: Dict[str, Any]) -> None:
        found = record_alerts(record)
        if not found:
            return
        self.alerts.extend((record.get("step"), alert) for alert in found)
        step, newest = self.alerts[-1]
        action = str(newest.get("action", "warn"))
        style = ACTION_STYLE.get(action, "bold yellow")
        count = len(self.alerts)
        self.update(f"[{style}]⚠ {count} stability alert{'s' if count > 1 else ''}[/]  newest: step {step} "
                    f"{escape(newest['kind'])} ({escape(action)}): {escape(str(newest.get('message', '')))}")
        self.display = True
