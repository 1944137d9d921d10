"""Chaos: kill -9 the launcher, the wrapper or torchrun at a random moment of a launch, over many
tiny runs, and every run still ends in a true final state in the registry: none left `running`
or `starting`, none `lost`, `succeeded` exactly when the training completed, and no process of
any run left alive. Real launcher processes, real torchrun; the job is the contract's stand-in
(tests/launcher_stub: ~1.5 s of "training"), so a trial costs ~3 s of CPU, mostly torchrun's
import of torch. CHAOS_SEED=N replays a failing draw (the seed is in the failure message)."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from engine import run_lock
from olmo_tui.core.backends.base import RunStatus, set_backend
from olmo_tui.core.backends.local import LocalBackend
from olmo_tui.core.launch import run_manager
from olmo_tui.core.runs.registry import Registry, runs_root
from olmo_tui.core.runs.tailing import wait_for

STUB_DIR = Path(__file__).resolve().parents[2] / "launcher_stub"
STEPS = 30
TRIALS = 24  # 8 per victim (the launcher: from its start, or from its mkdir on)
AT_ONCE = 3
LAUNCHER = """
import sys
from engine.config import resolve
from olmo_tui.core.backends.base import set_backend
from olmo_tui.core.backends.local import LocalBackend
from olmo_tui.core.launch.launcher import launch as start_run
set_backend("local", LocalBackend(engine_module="stub_engine"))
start_run(resolve(preset="tiny-cpu", overrides=[f"--run_name={sys.argv[1]}"]), preset="tiny-cpu")
"""


def processes(*needles: str, without: str = "", not_child_of: int = -1) -> list:
    """Live pids whose command line holds every needle (and not `without`), oldest first."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmd = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state, ppid = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[:2]
        except OSError:
            continue
        if state != "Z" and all(n in cmd for n in needles) and not (without and without in cmd) \
                and int(ppid) != not_child_of:
            found.append(int(entry))
    return sorted(found)


def trial(name: str, victim: str, delay: float, env: dict, log: list) -> None:
    launcher = subprocess.Popen([sys.executable, "-c", LAUNCHER, name], env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
    marker = f"/{name}-"  # in the run dir path of the wrapper's and torchrun's argv
    target = launcher.pid
    if victim == "launcher-mid-launch":  # from its mkdir on: config, record, wrapper start
        wait_for(lambda: any(runs_root().glob(f"{name}-*")), 60, poll_s=0.005)
    elif victim != "launcher":
        # The wrapper's argv holds torchrun's, so torchrun is the one without "local_wrapper".
        needles, without = ((("local_wrapper", marker), "") if victim == "wrapper"
                            else (("torch.distributed.run", marker), "local_wrapper"))
        seen: list = []

        def appeared() -> bool:
            # The detached wrapper: the launcher's own child only forks it and exits.
            seen[:] = processes(*needles, without=without, not_child_of=launcher.pid)
            return bool(seen)

        wait_for(appeared, 60, poll_s=0.02)
        target = seen[0] if seen else None
    time.sleep(delay)
    if target is not None:
        try:
            os.kill(target, signal.SIGKILL)
            log.append((name, victim, round(delay, 2), target))
        except ProcessLookupError:
            log.append((name, victim, round(delay, 2), "already gone"))
    launcher.wait(timeout=120)


def completed(run_dir: Path) -> bool:
    """The training reached its last step (the job's own metrics say so)."""
    try:
        lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    except OSError:
        return False
    return bool(lines) and json.loads(lines[-1])["step"] == STEPS


@pytest.mark.slow
def test_kill_minus_nine_anywhere_leaves_every_run_in_a_true_final_state(monkeypatch, isolated_xdg):
    seed = int(os.environ.get("CHAOS_SEED") or random.SystemRandom().randrange(10**6))
    rng = random.Random(seed)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(STUB_DIR), str(Path(__file__).resolve().parents[3])]),
           "STUB_STEPS": str(STEPS), "STUB_STEP_S": "0.05"}
    victims = ["launcher", "launcher-mid-launch", "wrapper", "wrapper", "torchrun", "torchrun"] * (TRIALS // 6)
    rng.shuffle(victims)
    # Delays span each victim's whole life: the launcher's start-up and launch (seconds under
    # load), the wrapper's fork / torchrun start / the training, torchrun's start-up and run.
    spans = {"launcher": 4.0, "launcher-mid-launch": 0.4, "wrapper": 3.0, "torchrun": 3.0}
    draws = [(f"chaos{i}", victim, rng.uniform(0, spans[victim]))
             for i, victim in enumerate(victims)]
    log: list = []
    for start in range(0, len(draws), AT_ONCE):
        threads = [threading.Thread(target=trial, args=(*draw, env, log)) for draw in draws[start:start + AT_ONCE]]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    why = f"CHAOS_SEED={seed}; kills: {log}"

    set_backend("local", LocalBackend(engine_module="stub_engine"))
    try:
        registry = Registry()

        def settled() -> bool:
            runs = run_manager.refresh_all(registry)
            return all(run.terminal for run in runs) and not processes(f"{runs_root()}/chaos")

        assert wait_for(settled, 180, poll_s=0.5), why
        runs = {Path(run.run_dir).name: run for run in run_manager.refresh_all(registry)}
    finally:
        set_backend("local", None)
    dirs = sorted(p for p in runs_root().iterdir() if p.is_dir()) if runs_root().is_dir() else []
    assert {d.name for d in dirs} <= set(runs), why  # every run dir is known to the registry
    for run_dir in dirs:
        run = runs[run_dir.name]
        detail = f"{run.id}: {run.status} {run.exit_code} {run.message!r}; {why}"
        assert run.status in (RunStatus.SUCCEEDED, RunStatus.FAILED), detail  # none lost, none running
        assert (run.status == RunStatus.SUCCEEDED) == completed(run_dir), detail  # the truth
        assert run_lock.is_alive(run_dir) is not True, detail
    print("\n".join(f"{d.name}: {runs[d.name].status} {runs[d.name].message or ''}" for d in dirs), why, sep="\n")
    # Every wrapper or torchrun kill hit a launched run (its dir exists, judged above).
    hit = {name for name, victim, _, target in log if victim in ("wrapper", "torchrun") and target != "already gone"}
    assert hit <= {d.name.rsplit("-", 3)[0] for d in dirs}, why
