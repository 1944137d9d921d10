"""Engine speed features that CPU CI can check: the float8 config path and its errors, the
speed monitor counting time spent after a step, and 2 gloo ranks stopping together when only
one of them got the signal (the agreement runs every trainer.cancel_check_interval steps)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine.config import ConfigError, resolve
from engine.distributed.float8 import MODES, float8_problem

import tiny_run
from test_trainer_run import REPO, SMALL, _env, ckpt_steps, records

FIELD = "train_module.float8"


def test_float8_field_takes_off_tensorwise_rowwise_only():
    assert resolve(preset="tiny-cpu").train_module.float8 == "off"
    for mode in MODES:
        assert resolve(preset="tiny-cpu", overrides=[f"--{FIELD}={mode}"]).train_module.float8 == mode
    with pytest.raises(ConfigError) as err:
        resolve(preset="tiny-cpu", overrides=[f"--{FIELD}=fp8"])
    assert FIELD in str(err.value)


def test_float8_problem_names_what_is_missing():
    assert float8_problem("off", "cpu") is None
    assert float8_problem("rowwise", "cuda", (9, 0), "NVIDIA H200") is None
    cases = {
        ("tensorwise", "cpu", None, "", True, False): "needs a CUDA GPU",
        ("rowwise", "cuda", (8, 0), "NVIDIA A100", True, False): "A100 has 8.0",
        ("rowwise", "cuda", (9, 0), "NVIDIA H200", False, False): "pip install 'olmo-tui[gpu]'",
        ("rowwise", "cuda", (9, 0), "NVIDIA H200", True, True): "tensor parallelism",
    }
    for args, words in cases.items():
        problem = float8_problem(*args)
        assert words in problem and FIELD in problem and "\n" not in problem, problem


def test_float8_on_cpu_is_a_one_line_config_error_that_leaves_nothing(tmp_path):
    run_dir = tmp_path / "f8"
    cmd = [sys.executable, "-m", "engine", "f8", "--preset", "tiny-cpu", "--run-dir", str(run_dir), *SMALL,
           f"--{FIELD}=rowwise"]
    result = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, env=_env(tmp_path), timeout=120)
    assert result.returncode == 2, result.stdout[-2000:] + result.stderr[-2000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and FIELD in errors[0] and "CUDA" in errors[0], result.stderr
    assert "Traceback" not in result.stderr
    assert not run_dir.exists()


def test_speed_monitor_counts_time_spent_after_the_step(tmp_path):
    """Work after post_step (here: a slow logger, as a GPU wait at a log step would be) must
    lower tokens/s: the live figure matches a wall-clock window over the same steps."""
    from engine.run import RunPaths
    from engine.train.build import build_trainer
    from engine.train.callback import Callback

    cfg = tiny_run.small_config("--trainer.metrics_collect_interval=2", steps=12)
    clock = {}

    class SlowLogger(Callback):
        name = "slow_logger"

        def log_metrics(self, step, record):
            time.sleep(0.05)

    class WindowClock(Callback):
        name = "window_clock"
        priority = -100

        def post_step(self):
            if self.trainer.global_step in (4, 12):
                clock[self.trainer.global_step] = time.perf_counter()

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    saved = dict(os.environ)
    try:
        env = build_trainer(cfg, RunPaths(run_dir, run_dir / "checkpoints"))
        env.restore()
        env.trainer.add_callback(SlowLogger())
        env.trainer.add_callback(WindowClock())
        env.trainer.fit()
        env.teardown()
    finally:
        os.environ.clear()
        os.environ.update(saved)
    tokens = cfg.data_loader.global_batch_size
    window_tps = tokens * 8 / (clock[12] - clock[4])
    inside = [r for r in tiny_run.metrics(run_dir) if 4 < r["step"] <= 12 and r.get("tps")]
    assert [r["step"] for r in inside] == [6, 8, 10, 12]
    live_tps = tokens * 8 / sum(tokens * 2 / r["tps"] for r in inside)
    assert live_tps == pytest.approx(window_tps, rel=0.02)


def _children(pid: int) -> list:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    out.append(int(entry.name))
            except (OSError, ValueError, IndexError):
                pass
    return out


def _rank_of(pid: int):
    try:
        environ = (Path("/proc") / str(pid) / "environ").read_bytes().split(b"\0")
    except OSError:
        return None
    for item in environ:
        if item.startswith(b"RANK="):
            return int(item[5:])
    return None


@pytest.mark.slow
def test_two_ranks_stop_together_when_only_one_got_the_signal(tmp_path):
    interval = 4
    run_dir = tmp_path / "agree"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           "-m", "engine", run_dir.name, "--preset", "tiny-cpu", "--run-dir", str(run_dir), *SMALL,
           "--launch.nproc_per_node=2", "--trainer.max_duration=400 steps",
           f"--trainer.cancel_check_interval={interval}"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
                            env=_env(tmp_path))
    deadline = time.monotonic() + 180
    while max((r["step"] for r in records(run_dir)), default=0) < 3:
        assert proc.poll() is None and time.monotonic() < deadline, "the run did not reach step 3"
        time.sleep(0.02)
    rank1 = [pid for pid in _children(proc.pid) if _rank_of(pid) == 1]
    assert len(rank1) == 1
    os.kill(rank1[0], signal.SIGTERM)  # rank 0 never sees a signal
    out, err = proc.communicate(timeout=180)
    last = max(r["step"] for r in records(run_dir))
    assert last < 400 and last % interval == 0, (last, err[-2000:])
    assert f"stopped by SIGTERM at step {last}" in out  # printed by rank 0: it agreed to stop
    assert ckpt_steps(run_dir)[-1] == last
    final = run_dir / "checkpoints" / f"step{last}"
    assert (final / ".complete.json").is_file()
    assert sorted(p.name for p in (final / "train").iterdir()) == ["rank0.pt", "rank1.pt"]


def test_float8_on_a_card_without_float8_is_a_config_issue_and_speeds_up_the_estimate():
    from olmo_tui.core.config.estimates import FLOAT8_SPEEDUP, estimate

    with pytest.raises(ConfigError) as err:
        resolve(preset="olmo2-1b", overrides=[f"--{FIELD}=tensorwise", "--launch.accelerator=A100"])
    assert FIELD in str(err.value) and "A100" in str(err.value)
    base = resolve(preset="olmo2-1b", overrides=["--launch.accelerator=H200"])
    fast = resolve(preset="olmo2-1b", overrides=["--launch.accelerator=H200", f"--{FIELD}=tensorwise"])
    assert base.train_module.float8 == "off"  # the preset states it
    assert estimate(base).wall_seconds / estimate(fast).wall_seconds == pytest.approx(FLOAT8_SPEEDUP["tensorwise"])
