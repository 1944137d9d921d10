"""Stop signals that arrive before the Trainer has installed its handlers (torch import, model
build, data set-up can take a while): remembered here instead of being lost or killing the
process, so the Trainer stops after its first step with a final checkpoint.

SLURM's warning before a time limit (SIGUSR1, launch.slurm.signal_before_limit_s) is the case
that needs it: its timing does not depend on how far the job has got. SIGTERM and SIGINT keep
their default meaning before training starts (stop now: there is nothing to save yet).
"""

from __future__ import annotations

import signal
from typing import Optional

EARLY_SIGNALS = (signal.SIGUSR1,)
_pending: Optional[int] = None


def _remember(signum, frame) -> None:
    global _pending
    _pending = signum


def install_early_handlers() -> None:
    for signum in EARLY_SIGNALS:
        try:
            signal.signal(signum, _remember)
        except ValueError:  # not the main thread
            pass


def take_pending() -> Optional[int]:
    """The signal that came early (once), or None."""
    global _pending
    signum, _pending = _pending, None
    return signum
