"""Headless mode with the real engine: every documented exit code, --detach/--json, and the
runs / logs / cancel / relaunch subcommands, each as a real `python -m olmo_tui` process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from cli_helpers import REPO, run_cli

FAST = ["--data_loader.global_batch_size=512", "--train_module.rank_microbatch_size=512",
        "--trainer.metrics_collect_interval=1", "--trainer.callbacks.lm_evaluator.enabled=false",
        "--trainer.callbacks.checkpointer.save_interval=1000",
        "--trainer.callbacks.checkpointer.ephemeral_save_interval=500"]


def steps(n: int) -> str:
    return f"--trainer.max_duration={{value: {n}, unit: steps}}"


def record_of(run_id: str) -> dict:
    out = run_cli("runs", "--json")
    assert out.returncode == 0, out.stderr
    return next(r for r in json.loads(out.stdout) if r["id"] == run_id)


def test_success_streams_the_log_then_relaunch_and_cancel():
    out = run_cli("--preset", "tiny-cpu", *FAST, steps(6), timeout=400)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.count("[metrics] ") == 6 and "finished at step 6" in out.stdout
    run_id = out.stderr.split("run ", 1)[1].split()[0]
    assert f"run {run_id} succeeded, exit code 0" in out.stderr
    parent = record_of(run_id)
    assert (parent["status"], parent["exit_code"], parent["latest_step"]) == ("succeeded", 0, 6)

    # logs prints the same log; table view lists the run.
    logs = run_cli("logs", run_id)
    assert logs.returncode == 0 and "finished at step 6" in logs.stdout
    table = run_cli("runs")
    assert run_id in table.stdout and "succeeded" in table.stdout

    # relaunch with one changed field, detached: a child whose config differs in exactly that.
    child = run_cli("relaunch", run_id, "--init_seed=5", steps(5000), "--detach", "--json")
    assert child.returncode == 0, child.stderr
    child_record = json.loads(child.stdout)
    assert child_record["parent_id"] == run_id and child_record["status"] == "running"
    from engine.config import resolve
    from olmo_tui.core.config.configdiff import diff

    before = resolve(config_file=str(Path(parent["run_dir"]) / "config.toml"))
    after = resolve(config_file=str(Path(child_record["run_dir"]) / "config.toml"))
    assert diff(before, after) == {"init_seed": 5, "trainer.max_duration.value": 5000}

    # cancel waits for the graceful stop.
    cancel = run_cli("cancel", child_record["id"], "--grace", "30", timeout=120)
    assert cancel.returncode == 0, cancel.stderr
    assert "cancelled" in cancel.stderr
    final = record_of(child_record["id"])
    assert final["status"] == "cancelled" and final["exit_code"] in (143, 137)
    assert run_cli("cancel", child_record["id"]).returncode == 0  # already ended: nothing to do


def test_job_failure_exits_1():
    """A user error only the engine can see (a parameter glob checked against the built model):
    the job fails with rank 0's code 2, and torchrun's report stays in the log."""
    out = run_cli("--preset", "tiny-cpu", *FAST, "--train_module.optim.group_overrides=[{params: [nomatch.*]}]",
                  timeout=400)
    assert out.returncode == 1, out.stderr[-2000:]
    assert "failed, exit code 2: error: train_module.optim.group_overrides[0].params:" in out.stderr
    assert "ChildFailedError" not in out.stdout + out.stderr and "Traceback" not in out.stdout + out.stderr


def test_usage_errors_exit_2_and_launch_nothing(isolated_xdg):
    cases = [
        ["--preset", "tiny-cpu", "--trainer.max_duration.valu=3"],
        ["--preset", "no-such-preset"],
        ["logs", "no-such-run"],
        ["cancel", "no-such-run"],
        ["relaunch", "no-such-run"],
        ["relaunch"],
    ]
    for args in cases:
        out = run_cli(*args)
        assert out.returncode == 2, (args, out.stderr)
        assert "Traceback" not in out.stderr
    runs_dir = Path(os.environ["OLMO_TUI_RUNS_DIR"])
    assert not runs_dir.exists() or not any(runs_dir.iterdir())


def test_launch_error_exits_3_and_leaves_nothing(tmp_path):
    blocked = tmp_path / "not-a-dir"
    blocked.write_text("a file where the runs folder should be")
    out = run_cli("--preset", "tiny-cpu", env={"OLMO_TUI_RUNS_DIR": str(blocked / "runs")})
    assert out.returncode == 3, out.stderr
    assert out.stderr.startswith("error: launch failed") and "Traceback" not in out.stderr
    assert json.loads(run_cli("runs", "--json").stdout) == []
    # An unusable registry is a launch-side error too, reported in one line.
    out = run_cli("--preset", "tiny-cpu", env={"XDG_STATE_HOME": str(blocked / "state")})
    assert out.returncode == 3 and "run registry" in out.stderr and "Traceback" not in out.stderr
    runs_dir = Path(os.environ["OLMO_TUI_RUNS_DIR"])
    assert not runs_dir.exists() or not any(runs_dir.iterdir())  # the half-made run dir is gone


def sigint_as_on_a_terminal() -> None:
    """The command's SIGINT as a Ctrl-C on a terminal finds it. An ignored SIGINT is inherited
    through exec: bash starts `cmd &` in a script with it ignored, so a suite launched that way
    gave the command an ignored SIGINT, which it keeps ignoring (the CI hang of this test)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def follow_until_metrics(*extra: str) -> tuple:
    proc = subprocess.Popen([sys.executable, "-m", "olmo_tui", "--preset", "tiny-cpu", *FAST, steps(5000), *extra],
                            cwd=REPO, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, preexec_fn=sigint_as_on_a_terminal)
    deadline = time.monotonic() + 180
    for line in proc.stdout:
        if line.startswith("[metrics] ") or time.monotonic() > deadline:
            break
    return proc


@pytest.fixture
def cancel_runs_left_running(isolated_xdg):
    """After a failure the 5000-step runs would go on training behind the rest of the suite."""
    yield
    for record in json.loads(run_cli("runs", "--json").stdout or "[]"):
        if record["status"] == "running":
            run_cli("cancel", record["id"], "--grace", "5", timeout=120)


@pytest.mark.slow
def test_interrupt_exits_130_and_leaves_the_run_unless_asked(cancel_runs_left_running):
    # Without a TTY nothing is asked: the run keeps going.
    proc = follow_until_metrics()
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    run_id = err.split("run ", 1)[1].split()[0]
    assert "keeps going" in err
    assert record_of(run_id)["status"] == "running"
    assert run_cli("cancel", run_id, "--grace", "30", timeout=120).returncode == 0

    # --cancel-on-interrupt: the run is stopped (gracefully) before the command returns.
    proc = follow_until_metrics("--cancel-on-interrupt", "--grace", "30")
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    run_id = err.split("run ", 1)[1].split()[0]
    assert record_of(run_id)["status"] == "cancelled"


def test_an_ignored_sigint_stays_ignored_and_sigterm_still_interrupts():
    """A command started with SIGINT ignored (`olmo-tui ... &` in a bash script) keeps it ignored
    while following; SIGTERM still sets the follower's stop; both are put back afterwards."""
    from olmo_tui.cli.follow import Interrupts

    stop = threading.Event()
    before_int = signal.signal(signal.SIGINT, signal.SIG_IGN)
    before_term = signal.getsignal(signal.SIGTERM)
    try:
        with Interrupts(stop) as interrupts:
            assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
            assert not stop.is_set()
            os.kill(os.getpid(), signal.SIGTERM)
            assert stop.wait(10) and interrupts.received
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
        assert signal.getsignal(signal.SIGTERM) is before_term
    finally:
        signal.signal(signal.SIGINT, before_int)
