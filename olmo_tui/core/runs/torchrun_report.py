"""Keeps torchrun's failure report off the user's terminal (it stays in the run's stdout.log).

When a worker exits non-zero, torchrun logs `E... failed (exitcode: N) local_rank: R ...`, then
prints its own Python traceback and a ChildFailedError box ending in a line of `=`. For a user
error (exit code 2) the engine has already printed the one line that matters, and the box only
buries it; for other failures the worker's own traceback (printed before) is the useful part.

`ReportFilter.feed(line)` returns the lines to show: the report is held back from its first
line to the end of its box, then dropped (exit code 2) or replaced by one line pointing at the
log. Anything that does not finish like a report within MAX_REPORT_LINES is shown unchanged.
"""

from __future__ import annotations

import re
from typing import List, Optional

AGENT_FAILED = re.compile(r"failed \(exitcode: (-?\d+)\) local_rank: (\d+)")
BOX_RULE = re.compile(r"^={20,}\s*$")
USER_ERROR_EXIT = 2
# A rank stopped by SIGINT / SIGTERM (a cancel, Ctrl-C) after its final checkpoint: the
# engine's own "stopped by SIGTERM at step N" line says it all, so the report is dropped too.
STOPPED_EXITS = frozenset({130, 143, -2, -15})
MAX_REPORT_LINES = 400


class ReportFilter:
    def __init__(self, log_path: Optional[str] = None):
        self.log_path = log_path
        self._held: List[str] = []
        self._exit_code: Optional[int] = None
        self._rank = "0"
        self._rules = 0  # box rules seen: the box opens and closes with one

    def feed(self, line: str) -> List[str]:
        if not self._held:
            match = AGENT_FAILED.search(line)
            if match is None:
                return [line]
            self._exit_code, self._rank = int(match.group(1)), match.group(2)
            self._held, self._rules = [line], 0
            return []
        self._held.append(line)
        if BOX_RULE.match(line):
            self._rules += 1
            if self._rules == 2:
                return self._replace()
        if len(self._held) > MAX_REPORT_LINES:  # not torchrun's report after all
            return self.flush()
        return []

    def _replace(self) -> List[str]:
        code, self._held = self._exit_code, []
        if code == USER_ERROR_EXIT or code in STOPPED_EXITS:
            return []
        where = f" (torchrun's report: {self.log_path})" if self.log_path else ""
        return [f"[olmo-tui] rank {self._rank} exited with code {code}{where}"]

    @property
    def holding(self) -> bool:
        """Inside a report: lines are being held back."""
        return bool(self._held)

    def flush(self) -> List[str]:
        """At the end of the log: whatever is held back, unchanged."""
        held, self._held = self._held, []
        return held
