"""The journey harness: the real `olmo-tui` in a real terminal (tmux), keys in, screen text out.

Why tmux rather than a pty + pyte: tmux is the terminal emulator researchers actually run the app
in over SSH (its escape-sequence handling, alternate screen and key encoding are the real ones,
not a library's model of them), it is already what scripts/tmux_check.sh uses, it needs no Python
dependency, and `capture-pane` gives the screen as plain text at any moment from outside the app,
so a crash (the pane's process exits) leaves its traceback on the captured screen to show.

Every wait polls the screen with a deadline (never a fixed sleep alone), so a loaded CI machine
only makes a journey slower, not flaky. Every capture is checked for a traceback.
"""

from __future__ import annotations

import atexit
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Callable, Optional, Union

import pytest

REPO = Path(__file__).resolve().parents[2]
# Generous: a 2-core CI machine running other tests can take seconds to draw a screen.
DEFAULT_TIMEOUT_S = float(os.environ.get("JOURNEY_TIMEOUT_S", "40"))
POLL_S = 0.1
TRACEBACK = re.compile(r"Traceback \(most recent call last\)|DuplicateIds")

requires_tmux = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux not installed")

Want = Union[str, "re.Pattern[str]", Callable[[str], bool]]


def flat(screen: str) -> str:
    """A screen's words in one line (a dialog's wrapped text, without its frame): for phrases
    that may wrap."""
    return " ".join(re.sub(r"[█▀▄│]", " ", screen).split())


def _matches(want: Want, screen: str) -> bool:
    if callable(want):
        return bool(want(screen))
    if isinstance(want, re.Pattern):
        return want.search(screen) is not None
    return want in screen


class Terminal:
    """One `olmo-tui` in its own tmux server (a private socket: nothing shared with the user's
    tmux or with another test), at a fixed size."""

    def __init__(self, width: int = 80, height: int = 24, env: Optional[dict] = None,
                 argv: Optional[list] = None, cwd: Optional[Path] = None) -> None:
        self.width, self.height = width, height
        self.socket = f"olmo-journey-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.target = "journey"
        base_env = {k: v for k, v in os.environ.items()
                    if k.startswith(("XDG_", "OLMO_")) or k in ("PATH", "HOME", "LANG", "LC_ALL", "PYTHONPATH")}
        base_env.update(env or {})
        base_env.setdefault("LANG", "C.UTF-8")
        base_env["TEXTUAL_ANIMATIONS"] = "none"  # screens settle at once: fewer in-between frames
        argv = argv or [sys.executable, "-m", "olmo_tui"]
        # COLUMNS / LINES would override the pane's real size (Python's shutil, so Textual, read
        # them first): the tmux server passes on whatever its first client's environment held.
        command = ("env -u COLUMNS -u LINES " + " ".join(shlex.quote(f"{k}={v}") for k, v in sorted(base_env.items()))
                   + " " + shlex.join(argv))
        self._tmux("-f", "/dev/null", "new-session", "-d", "-s", self.target, "-x", str(width), "-y", str(height),
                   "-c", str(cwd or REPO), command)
        # Keep a crashed app's last output on screen, so the test shows its traceback.
        self._tmux("set-option", "-t", self.target, "remain-on-exit", "on")
        # A test process that dies without its `finally` (a timeout) must not leave the server.
        atexit.register(self.close)
        self.last = ""

    def _tmux(self, *args: str) -> str:
        done = subprocess.run(["tmux", "-L", self.socket, *args], capture_output=True, text=True, timeout=30)
        if done.returncode != 0:
            raise RuntimeError(f"tmux {' '.join(args[:2])}: {done.stderr.strip()}")
        return done.stdout

    # ---- screen -------------------------------------------------------------------------------
    def screen(self) -> str:
        """The visible screen as text, checked for a traceback and a dead app."""
        text = self._tmux("capture-pane", "-p", "-t", self.target)
        self.last = text
        dead = self._tmux("display-message", "-p", "-t", self.target, "#{pane_dead}").strip() == "1"
        if dead or TRACEBACK.search(text):
            history = self._tmux("capture-pane", "-p", "-S", "-200", "-t", self.target)
            raise AssertionError(("the app exited" if dead else "a traceback on screen") + ":\n" + history)
        return text

    def wait_for(self, want: Want, timeout: float = DEFAULT_TIMEOUT_S, what: str = "") -> str:
        start = time.monotonic()
        deadline = start + timeout
        while True:
            text = self.screen()
            if _matches(want, text):
                if os.environ.get("JOURNEY_TRACE"):
                    print(f"[journey] {time.monotonic() - start:5.1f} s  {what or want!r}", file=sys.stderr)
                return text
            if time.monotonic() > deadline:
                size = self._tmux("display-message", "-p", "-t", self.target, "#{window_width}x#{window_height}")
                raise AssertionError(f"waited {timeout:g} s for {what or want!r}; the screen ({size.strip()}):\n{text}")
            time.sleep(POLL_S)

    def wait_gone(self, text: str, timeout: float = DEFAULT_TIMEOUT_S) -> str:
        return self.wait_for(lambda screen: text not in screen, timeout, what=f"{text!r} to go")

    def wait_stable(self, timeout: float = DEFAULT_TIMEOUT_S, quiet_s: float = 0.4) -> str:
        """The screen once it stopped changing for quiet_s (a screen that redraws on a timer
        counts as settled when the deadline passes)."""
        deadline = time.monotonic() + timeout
        text, since = self.screen(), time.monotonic()
        while time.monotonic() < deadline:
            time.sleep(POLL_S)
            now = self.screen()
            if now != text:
                text, since = now, time.monotonic()
            elif time.monotonic() - since >= quiet_s:
                break
        return text

    def settle(self) -> str:
        """After a key that moves focus (whose effect shows no text to wait for): the screen once
        it is quiet, at most a few seconds (a monitor redraws all the time)."""
        return self.wait_stable(timeout=3, quiet_s=0.25)

    def lines(self) -> list:
        return self.screen().splitlines()

    # ---- keys ---------------------------------------------------------------------------------
    def press(self, *keys: str) -> None:
        """tmux key names: Enter, Escape, Tab, BTab, C-l, End, F1, Up, Space ..."""
        for key in keys:
            self._tmux("send-keys", "-t", self.target, key)

    def type(self, text: str) -> None:
        self._tmux("send-keys", "-t", self.target, "-l", text)

    def palette(self, command: str, expect: Optional[str] = None) -> None:
        """ctrl+p, type the command's words, run the highlighted match."""
        self.press("C-p")
        self.wait_for("Search for commands", what="the command palette")
        self.type(command)
        self.wait_for(expect or command, what=f"palette entry {command!r}")
        self.wait_stable(timeout=3, quiet_s=0.3)
        self.press("Enter")
        self.wait_gone("Search for commands")

    def goto_field(self, path: str) -> None:
        """The editor's "Go to field PATH" (palette); returns once the field has the focus (the
        help line above the footer names the focused field)."""
        self.palette(path, f"Go to field {path}")
        self.wait_for(f" {path}: ", what=f"focus on {path}")
        self.settle()

    def replace_text(self, text: str) -> None:
        """Clear the focused input (end, then delete to the start) and type `text`."""
        self.press("End", "C-u")
        self.settle()  # an edit revalidates the whole config: a second or more on a busy machine
        self.type(text)
        self.settle()

    def save(self, name: str, text: Optional[str] = None) -> None:
        """With $JOURNEY_SCREENS set (a folder), keep this screen as NAME.txt: the plain-text
        captures in docs/screens/ come from `JOURNEY_SCREENS=docs/screens pytest tests/journeys`."""
        folder = os.environ.get("JOURNEY_SCREENS")
        if folder:
            lines = (text if text is not None else self.screen()).rstrip("\n").splitlines()
            Path(folder).mkdir(parents=True, exist_ok=True)
            (Path(folder) / f"{name}.txt").write_text("\n".join(line.rstrip() for line in lines) + "\n")

    def close(self) -> None:
        try:
            self._tmux("kill-server")
        except (RuntimeError, subprocess.TimeoutExpired):
            pass

    def __enter__(self) -> "Terminal":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def check_fits(self, text: Optional[str] = None) -> None:
        lines = (text if text is not None else self.screen()).splitlines()
        assert len(lines) <= self.height and max(map(len, lines), default=0) <= self.width
