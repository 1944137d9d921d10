"""Signals while a headless command follows a run: Ctrl-C / SIGTERM end the following in plain
code (Interrupts), through a stop flag a signal handler may set (WakeFlag)."""

from __future__ import annotations

import os
import select
import signal
from typing import Optional


class WakeFlag:
    """A stop flag that is safe to set from a signal handler.

    threading.Event is not: its set() takes the lock of a Condition that the main thread may
    hold at that very moment, inside Event.wait() (on its way in or out of the wait), and a
    handler runs in the main thread, so the process deadlocks on its own lock until a second
    signal. Here set() is a plain attribute and one byte down a self-pipe; wait() sleeps in
    select() on the pipe, which the byte wakes at once."""

    def __init__(self) -> None:
        self._set = False
        self._read, self._write = os.pipe()
        os.set_blocking(self._read, False)
        os.set_blocking(self._write, False)

    def set(self) -> None:
        self._set = True
        try:
            os.write(self._write, b"!")
        except OSError:  # the pipe is full (woken already) or closed: the flag alone says it
            pass

    def is_set(self) -> bool:
        return self._set

    def wait(self, timeout: Optional[float] = None) -> bool:
        if not self._set:
            try:
                select.select([self._read], [], [], timeout)
            except (OSError, ValueError):  # closed under us: nothing left to wait for
                pass
        return self._set

    def close(self) -> None:
        for fd in (self._read, self._write):
            try:
                os.close(fd)
            except OSError:
                pass


class Interrupts:
    """Ctrl-C and SIGTERM to this command (the job itself is a separate process) while it follows a
    run: the first one sets `stop`, so the follower ends at its next poll and the caller handles it
    in plain code, instead of a KeyboardInterrupt landing wherever the follower happens to be (a
    registry transaction, a file write). A second signal interrupts at once.

    A signal the command was started with ignored stays ignored: bash starts `olmo-tui ... &` in
    a script with SIGINT ignored, so that a Ctrl-C meant for the script leaves it alone."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, stop: WakeFlag):
        self.stop = stop
        self.received = False
        self._previous = {}

    def _on_signal(self, signum, frame) -> None:
        if self.received:
            raise KeyboardInterrupt
        self.received = True
        self.stop.set()  # a WakeFlag: no lock, so safe wherever the main thread was

    def __enter__(self) -> "Interrupts":
        try:
            for signum in self.SIGNALS:
                if signal.getsignal(signum) is not signal.SIG_IGN:
                    self._previous[signum] = signal.signal(signum, self._on_signal)
        except ValueError:  # not the main thread (tests calling in-process): leave signals alone
            pass
        return self

    def __exit__(self, *exc) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)
