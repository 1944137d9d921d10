"""The headless CLI as a Unix tool: a closed pipe ends it quietly, Ctrl-C never deadlocks the
follower, `--dry-run` names what a launch would refuse (and `--check` refuses it), `--debug`
works for a multi-rank CPU run."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time

import pytest

from cli_helpers import REPO, run_cli
from olmo_tui.core.runs.registry import Registry, RunRecord, runs_root
from olmo_tui.core.runs.run_status import RunStatus

MISSING = ["--dataset.kind=numpy", "--dataset.paths=[/no/such/dir/train.npy]"]


# ---- --dry-run and --check -------------------------------------------------------------------

def test_dry_run_names_what_a_launch_would_refuse_and_check_refuses_it(isolated_xdg):
    dry = run_cli("--preset", "tiny-cpu", *MISSING, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "/no/such/dir/train.npy" in dry.stdout  # the config is still printed
    [problem] = [line for line in dry.stderr.splitlines() if line.startswith("warning: a launch would fail:")]
    assert problem.startswith("warning: a launch would fail: dataset.paths:") and "/no/such/dir/train.npy" in problem

    strict = run_cli("--preset", "tiny-cpu", *MISSING, "--check")
    assert strict.returncode == 2 and problem in strict.stderr.splitlines()
    launch = run_cli("--preset", "tiny-cpu", *MISSING)
    assert launch.returncode == 2 and launch.stderr.strip() == problem.replace("warning: a launch would fail:", "error:")
    assert run_cli("--preset", "tiny-cpu", "--check").returncode == 0  # nothing to refuse
    assert not runs_root().exists() or list(runs_root().iterdir()) == []


# ---- a closed pipe -----------------------------------------------------------------------------

def seed_runs(count: int) -> RunRecord:
    """`count` finished runs in the registry; the last one with a long log."""
    runs = [RunRecord(id=f"seeded-{i:05d}", name=f"seeded-{i}", backend="local", run_dir=str(runs_root() / f"seeded-{i:05d}"),
                      status=RunStatus.SUCCEEDED, preset="tiny-cpu", created=1000.0 + i, started=1000.0 + i,
                      ended=1001.0 + i, exit_code=0) for i in range(count)]
    Registry().add_all(runs)
    last = runs[-1]
    (runs_root() / last.id).mkdir(parents=True)
    (runs_root() / last.id / "stdout.log").write_text("".join(f"step {i} loss 2.5\n" for i in range(40_000)))
    return last


def read_then_close(args, keep: int):
    """Run `olmo-tui ARGS`, read `keep` bytes of its stdout and close the pipe (as `head` does)."""
    proc = subprocess.Popen([sys.executable, "-m", "olmo_tui", *args], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    proc.stdout.read(keep)
    proc.stdout.close()
    err = proc.stderr.read().decode()
    return proc.wait(timeout=60), err


@pytest.mark.parametrize("args, keep", [(["runs"], 40), (["runs", "--json"], 10), (["logs", "seeded-01499"], 20)])
def test_a_closed_pipe_ends_the_command_quietly(isolated_xdg, args, keep):
    seed_runs(1500)  # far more output than a pipe holds: the writer must meet the closed end
    code, err = read_then_close(args, keep)
    assert err == "" and code == 141  # 128 + SIGPIPE, what `yes | head -1` leaves behind


# ---- Ctrl-C while following ------------------------------------------------------------------

def test_a_signal_while_the_stop_flag_is_locked_does_not_deadlock():
    """The handler runs in the main thread wherever it was: here inside the flag's own wait, with
    any lock the flag takes held (threading.Event's Condition lock: set() from the handler then
    waits forever for itself). A fresh interpreter, so a deadlock is a timeout, not a hung suite."""
    code = textwrap.dedent("""
        import os, signal, threading
        from olmo_tui.cli.follow import WakeFlag
        from olmo_tui.cli.signals import Interrupts
        stop = WakeFlag()
        with Interrupts(stop) as interrupts:
            held = getattr(stop, "_cond", None)      # a threading.Event holds this inside wait()
            if held is not None:
                held.acquire()
            os.kill(os.getpid(), signal.SIGINT)      # the handler runs here, in this thread
            print(interrupts.received, stop.is_set(), stop.wait(5), flush=True)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=30)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["True", "True", "True"]


def test_the_flag_wakes_a_waiter_at_once():
    from olmo_tui.cli.signals import WakeFlag

    flag = WakeFlag()
    try:
        started = time.monotonic()
        assert flag.wait(0.05) is False and time.monotonic() - started >= 0.04
        import threading

        threading.Timer(0.1, flag.set).start()
        started = time.monotonic()
        assert flag.wait(20) is True and time.monotonic() - started < 10
    finally:
        flag.close()


# ---- --debug -----------------------------------------------------------------------------------

@pytest.mark.slow
def test_debug_works_for_a_two_rank_cpu_run(isolated_xdg):
    out = run_cli("--preset", "tiny-cpu", "--launch.nproc_per_node=2", "--trainer.hard_stop={value: 3, unit: steps}",
                  "--trainer.callbacks.lm_evaluator.enabled=false", "--debug", timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    [record] = json.loads(run_cli("runs", "--json").stdout)
    assert (record["status"], record["latest_step"]) == ("succeeded", 3)
    launch = json.loads((runs_root() / record["id"] / "launch.json").read_text())
    assert launch["env"]["TORCH_DISTRIBUTED_DEBUG"] == "INFO" and launch["env"]["NCCL_DEBUG"] == "INFO"
