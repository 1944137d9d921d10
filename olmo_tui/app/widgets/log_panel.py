"""The run log panel: a Textual `Log` fed in batches, with follow, `/` filter and highlight,
and jumps between error and warning lines.

Feeding: any thread calls `feed(lines)` (cheap: a list append under a lock); a timer on the
UI thread moves what arrived into the `Log` every FLUSH_S with one `write_lines` call.
Per-line widget writes freeze the UI under a fast log (Textual issues #2187, #2432); one
batched write per tick keeps a key press answered within a frame or two.

Memory is bounded: the panel keeps the newest `max_lines` lines (the `Log` the same), and a
backlog that outruns the screen is cut to that many too; the file on disk keeps everything.
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Deque, List, Optional

from rich.highlighter import Highlighter
from rich.text import Text
from textual import on
from textual.actions import SkipAction
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.css.query import NoMatches
from textual.geometry import Size
from textual.widgets import Input, Log, Static

from engine.run_dir import METRICS_PREFIX
from olmo_tui.core.runs.tailing import line_kind



class RunLogHighlighter(Highlighter):
    """Errors red, warnings yellow, `[metrics]` records dim, the filter term reversed."""

    def __init__(self) -> None:
        self.term = ""

    def highlight(self, text: Text) -> None:
        plain = text.plain
        kind = line_kind(plain)
        if kind == "error":
            text.stylize("bold red")
        elif kind == "warning":
            text.stylize("yellow")
        elif plain.startswith(METRICS_PREFIX):
            text.stylize("dim")
        if self.term:
            lowered, term = plain.lower(), self.term.lower()
            start = lowered.find(term)
            while start >= 0:
                text.stylize("reverse", start, start + len(term))
                start = lowered.find(term, start + len(term))


class RunLog(Log):
    """`Log` with our highlighter and a marked line (the error/warning jumped to)."""

    marked: Optional[int] = None

    def __init__(self, **kwargs) -> None:
        super().__init__(highlight=True, **kwargs)
        self.highlighter = RunLogHighlighter()

    def write_lines(self, lines, scroll_end=None):
        """Log.write_lines for lines that are already split (no newlines inside): skips the
        per-line splitlines, the per-line cache discards and the width worker thread, which
        dominate the cost of a 10,000-line batch. The width is the longest line in
        characters (cell width differs only for wide glyphs; it only sets the h-scroll range)."""
        lines = lines if isinstance(lines, list) else list(lines)
        if not lines:
            return self
        is_end = self.is_vertical_scroll_end
        auto_scroll = self.auto_scroll if scroll_end is None else scroll_end
        self._lines.extend(lines)
        if self.max_lines is not None and len(self._lines) > self.max_lines:
            self._prune_max_lines()
        self._width = max(self._width, max(map(len, lines)))
        self.virtual_size = Size(self._width, len(self._lines))
        self._render_line_cache.clear()
        if auto_scroll and not self.is_vertical_scrollbar_grabbed and is_end:
            self.scroll_end(animate=False, immediate=True, x_axis=False)
        else:
            self.refresh()
        return self

    def _render_line_strip(self, y, rich_style):
        strip = super()._render_line_strip(y, rich_style)
        if y == self.marked:
            from rich.style import Style
            from textual.strip import Strip

            strip = Strip(strip.apply_style(Style(reverse=True)), strip.cell_length)
        return strip


class LogPanel(Vertical):
    DEFAULT_CSS = """
    LogPanel { height: 1fr; }
    LogPanel RunLog { height: 1fr; }
    LogPanel #log-filter { display: none; }
    LogPanel.filtering #log-filter { display: block; }
    LogPanel #log-status { height: 1; width: 1fr; color: $text-muted; }
    """
    BINDINGS = [
        # f and e are in the monitor's help (and the status line says "following (f)"): the
        # footer keeps its room at 80 columns for the run's own keys.
        Binding("f", "toggle_follow", "Follow", show=False),
        Binding("slash", "filter", "Filter"),
        Binding("e", "next_problem", "Next error/warning", show=False),
        Binding("E", "previous_problem", "Prev error/warning", show=False),
        Binding("G", "end", "End", show=False),
        Binding("escape", "clear_filter", "Clear filter", show=False),
    ]
    FLUSH_S = 0.1
    MAX_LINES_PER_TICK = 25_000  # bounds the UI thread's work per tick (a key press waits at most one)

    def __init__(self, max_lines: int = 200_000, **kwargs) -> None:
        super().__init__(**kwargs)
        self.max_lines = max_lines
        self.lines: Deque[str] = deque(maxlen=max_lines)  # newest lines, unfiltered
        self.total_lines = 0  # everything ever fed, including lines no longer kept
        self.skipped_lines = 0  # fed while the screen was behind, never drawn (still in the file)
        self.term = ""
        self._pending: List[str] = []
        self._lock = threading.Lock()
        self.following = True

    def compose(self) -> ComposeResult:
        yield Input(placeholder="filter (enter keeps it, esc clears)", id="log-filter")
        yield RunLog(max_lines=self.max_lines, id="log")
        yield Static("", id="log-status")

    def on_mount(self) -> None:
        self.set_interval(self.FLUSH_S, self.flush)
        self._show_status()

    @property
    def log_widget(self) -> RunLog:
        return self.query_one(RunLog)

    # ---- feeding (any thread) -------------------------------------------------------------
    def feed(self, lines: List[str]) -> None:
        with self._lock:
            self._pending.extend(lines)
            if len(self._pending) > 2 * self.max_lines:
                # The screen fell behind: keep only what could be shown anyway.
                skipped = len(self._pending) - self.max_lines
                self.total_lines += skipped
                self.skipped_lines += skipped
                del self._pending[:-self.max_lines]

    def flush(self) -> int:
        """Move the lines fed since the last tick into the Log; returns how many."""
        if not self.is_attached:
            return 0
        with self._lock:
            batch = self._pending[:self.MAX_LINES_PER_TICK]
            del self._pending[:self.MAX_LINES_PER_TICK]
        if not batch:
            return 0
        self.total_lines += len(batch)
        self.lines.extend(batch)
        if self.term:
            term = self.term.lower()
            batch = [line for line in batch if term in line.lower()]
        if batch:
            self.log_widget.write_lines(batch[-self.max_lines:], scroll_end=self.following)
        self._show_status()
        return len(batch)

    # ---- actions ----------------------------------------------------------------------------
    def action_toggle_follow(self) -> None:
        self.following = not self.following
        self.log_widget.auto_scroll = self.following
        if self.following:
            self.log_widget.marked = None
            self.log_widget.scroll_end(animate=False)
        self._show_status()

    def action_end(self) -> None:
        self.following = False
        self.action_toggle_follow()

    def action_filter(self) -> None:
        self.add_class("filtering")
        field = self.query_one("#log-filter", Input)
        field.value = self.term
        field.focus()

    @on(Input.Changed, "#log-filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        self.set_filter(event.value)

    @on(Input.Submitted, "#log-filter")
    def _filter_done(self, event: Input.Submitted) -> None:
        if not event.value:
            self.remove_class("filtering")
        self.log_widget.focus()

    def action_clear_filter(self) -> None:
        if not self.has_class("filtering") and not self.term:
            raise SkipAction()  # nothing to clear: let escape go back
        self.set_filter("")
        self.remove_class("filtering")
        self.log_widget.focus()

    def set_filter(self, term: str) -> None:
        """Show only lines holding `term` (case-insensitive), highlighted; '' shows all."""
        self.term = term
        log = self.log_widget
        log.highlighter.term = term
        log.marked = None
        log.clear()
        lowered = term.lower()
        shown = [line for line in self.lines if lowered in line.lower()] if term else list(self.lines)
        if shown:
            log.write_lines(shown, scroll_end=True)
        log.refresh()
        self._show_status()

    def jump(self, forward: bool) -> Optional[int]:
        """Scroll to the next (or previous) error or warning line and mark it."""
        log = self.log_widget
        lines = log.lines
        if log.marked is not None:
            start = log.marked
        elif self.following:  # nothing chosen yet: from the top going down, the end going up
            start = -1 if forward else len(lines)
        else:  # from the part of the log on screen
            start = int(log.scroll_y) - 1 if forward else int(log.scroll_y) + log.size.height
        indices = range(start + 1, len(lines)) if forward else range(min(start, len(lines)) - 1, -1, -1)
        for y in indices:
            if line_kind(lines[y]):
                self.following = False
                log.auto_scroll = False
                log.marked = y
                log.scroll_to(y=max(0, y - log.size.height // 3), animate=False)
                log.refresh()
                self._show_status(f"line {y + 1}: {line_kind(lines[y])}")
                return y
        self._show_status("no more errors or warnings " + ("below" if forward else "above"))
        return None

    def action_next_problem(self) -> None:
        self.jump(forward=True)

    def action_previous_problem(self) -> None:
        self.jump(forward=False)

    def _show_status(self, note: str = "") -> None:
        kept = len(self.lines)
        parts = [("following" if self.following else "paused") + " (f)"]
        dropped = self.total_lines - kept
        parts.append(f"{kept:,} lines" + (f" (+{dropped:,} older in stdout.log)" if dropped > 0 else ""))
        if self.term:
            parts.append(f"filter {self.term!r}: {self.log_widget.line_count:,} match")
        if note:
            parts.append(note)
        text = " · ".join(parts)
        if text == getattr(self, "_status_text", None):
            return
        self._status_text = text
        try:
            # Fixed size (CSS): no layout pass, which costs far more than the repaint.
            self.query_one("#log-status", Static).update(text, layout=False)
        except NoMatches:  # the screen is being torn down
            pass
