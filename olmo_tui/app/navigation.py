"""How a screen is shown: the one place that decides whether a screen is reused or built
fresh, so the stack never holds two screens with one id (Textual refuses the second with
DuplicateIds, which used to crash the app on `r` from a monitor opened from an editor).

Every screen has a key, its id:
- `presets`, `runs`, `monitor-<run id>`: one of each; showing it again goes back to it
  (the screens above it close), else it is built and pushed;
- `editor`, `compare`: built fresh each time; an open one closes first, with the screens
  above it (an editor holding edits that were never launched asks before it goes).

Dialogs (modal screens) are pushed directly: they close before anything else is shown.
"""

from __future__ import annotations

from typing import Callable, Optional

from textual.app import App
from textual.screen import Screen

REUSED = ("presets", "runs", "monitor-")


def is_reused(key: str) -> bool:
    return key.startswith(REUSED)


def find(app: App, key: str) -> Optional[Screen]:
    return next((s for s in app.screen_stack if s.id == key), None)


def show(app: App, key: str, build: Callable[[], Screen]) -> None:
    """Show the screen `key`: back to it where it is reused and open, else built by `build`
    and pushed once any open screen of that key (and those above it) has gone."""
    existing = find(app, key)
    if existing is None:
        app.push_screen(build())
        return
    if is_reused(key):
        app.run_worker(_pop_above(app, existing), group="navigation", exclusive=True)
        return
    unsaved = getattr(existing, "unsaved_edits", lambda: False)()
    if unsaved:
        from .screens.dialogs import ConfirmDialog

        app.push_screen(ConfirmDialog(f"Drop the edits in the open editor ({unsaved})?"),
                        lambda yes: yes and app.run_worker(_replace(app, existing, build), group="navigation"))
        return
    app.run_worker(_replace(app, existing, build), group="navigation", exclusive=True)


async def _pop_above(app: App, screen: Screen) -> None:
    while app.screen_stack and app.screen_stack[-1] is not screen and screen in app.screen_stack:
        await app.pop_screen()


async def _replace(app: App, old: Screen, build: Callable[[], Screen]) -> None:
    # Each pop is awaited: the old screen must be gone from the DOM before one of its id mounts.
    while old in app.screen_stack and len(app.screen_stack) > 1:
        await app.pop_screen()
    await app.push_screen(build())
