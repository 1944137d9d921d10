"""torch.profiler over a few training steps, written as a Chrome trace per rank.

Schedule (torch.profiler.schedule; one `prof.step()` per training step):

    skip_first steps untouched, then `repeat` cycles of
        wait   steps idle  ->  warmup steps traced and thrown away  ->  active steps recorded

so with the defaults (skip_first 5, wait 1, warmup 2, active 3, repeat 1) steps 9-11 are
recorded (counted from where the process starts: after a resume at step 100, steps 109-111). Warm-up matters: the first traced steps carry the profiler's own start-up cost.

Each recorded cycle is written to `<run dir>/profiler/rank<R>.trace.json` (cycles after the
first: `rank<R>.cycle<K>.trace.json`), first to a temp file and then renamed, so a reader never
sees half a trace. Open it in Perfetto (ui.perfetto.dev) or chrome://tracing. CPU activity is
always recorded; CUDA kernels too when training on a GPU. The path is printed in the log, and
the app's run monitor lists the traces of the run it shows.
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import torch
from torch.profiler import ProfilerActivity, profile, schedule

from engine.atomic import atomic_path
from engine.config.trainer import ProfilerConfig

from ..callback import Callback

TRACE_DIR = "profiler"


def trace_path(run_dir: Path, rank: int, cycle: int) -> Path:
    suffix = "" if cycle == 1 else f".cycle{cycle}"
    return Path(run_dir) / TRACE_DIR / f"rank{rank}{suffix}.trace.json"


def trace_written_line(rank: int, first_step: int, last_step: int, path: Path) -> str:
    """The log line naming a written trace (olmo_tui's run monitor parses it: keep the shape)."""
    return f"profiler: rank {rank} trace of steps {first_step}-{last_step} written to {path} (open in ui.perfetto.dev)"


def recorded_steps(config: ProfilerConfig, cycle: int, start_step: int = 0) -> range:
    """The (1-based) training steps a cycle records, as the schedule above lays them out; the
    schedule counts from the step the process started at (`start_step`, > 0 after a resume)."""
    cycle_len = config.wait + config.warmup + config.active
    first = start_step + config.skip_first + (cycle - 1) * cycle_len + config.wait + config.warmup + 1
    return range(first, first + config.active)


class ProfilerCallback(Callback):
    name = "profiler"
    priority = 0

    def __init__(self, config: ProfilerConfig):
        super().__init__()
        self.config = config
        self._profiler: Optional[profile] = None
        self._cycles = 0
        self._start_step = 0
        self.traces: List[Path] = []

    def pre_train(self) -> None:
        trainer = self.trainer
        if trainer.rank not in self.config.ranks:
            return
        activities = [ProfilerActivity.CPU]
        if trainer.device.type == "cuda":
            activities.append(ProfilerActivity.CUDA)
        c = self.config
        self._profiler = profile(
            activities=activities,
            schedule=schedule(skip_first=c.skip_first, wait=c.wait, warmup=c.warmup, active=c.active,
                              repeat=c.repeat),
            on_trace_ready=self._write_trace,
        )
        self._profiler.start()
        self._start_step = trainer.global_step
        steps = recorded_steps(c, 1, self._start_step)
        trainer.log(f"profiler: recording steps {steps.start}-{steps.stop - 1} "
                    f"(schedule skip_first={c.skip_first} wait={c.wait} warmup={c.warmup} "
                    f"active={c.active} repeat={c.repeat}) on rank(s) {c.ranks}")

    def post_step(self) -> None:
        if self._profiler is not None:
            self._profiler.step()

    def _write_trace(self, prof: profile) -> None:
        self._cycles += 1
        path = trace_path(self.trainer.run_dir, self.trainer.rank, self._cycles)
        path.parent.mkdir(parents=True, exist_ok=True)
        # The profiler writes by file name: export to a unique temp name, then replace.
        with atomic_path(path) as temp:
            prof.export_chrome_trace(str(temp))
        self.traces.append(path)
        steps = recorded_steps(self.config, self._cycles, self._start_step)
        last = min(steps.stop - 1, self.trainer.global_step)  # a run may end inside the cycle
        # Every profiled rank prints its own path; the app's run monitor picks these lines up.
        print(trace_written_line(self.trainer.rank, steps.start, last, path), flush=True)

    def _stop(self) -> None:
        if self._profiler is None:
            return
        profiler, self._profiler = self._profiler, None
        profiler.stop()  # writes a partial cycle if the run ends inside the active steps
        if not self.traces:
            self.trainer.log(f"profiler: the run ended at step {self.trainer.global_step}, before the first "
                             f"recorded step ({recorded_steps(self.config, 1, self._start_step).start}); no trace written")

    def post_train(self) -> None:
        self._stop()

    def on_error(self, exc: BaseException) -> None:
        self._stop()

    def close(self) -> None:
        self._stop()
