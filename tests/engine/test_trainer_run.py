"""olmo-train end to end in real subprocesses: training, resume after SIGKILL, graceful stops,
torchrun, load_path + hard_stop, non-finite loss.

All runs use the tiny-cpu preset shrunk (2 layers, width 64, 8 x 64-token sequences per step)
so 200 steps take seconds on 2 CPU cores; the README's `make run` uses the real preset.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

SMALL = [
    "--model.d_model=64", "--model.n_layers=2", "--model.n_heads=2",
    "--dataset.sequence_length=64", "--train_module.max_sequence_length=64",
    "--data_loader.global_batch_size=512", "--train_module.rank_microbatch_size=256",
    "--train_module.scheduler.warmup_steps=10",
    "--trainer.metrics_collect_interval=1",  # every step's loss in metrics.jsonl
    "--trainer.max_duration=200 steps",
    "--trainer.callbacks.checkpointer.save_interval=100",
    "--trainer.callbacks.checkpointer.ephemeral_save_interval=50",
    "--trainer.callbacks.lm_evaluator.eval_interval=100",
    "--trainer.callbacks.lm_evaluator.eval_batches=2",
]
# Measured on 2 CPU cores: the first loss is ~6.0 (uniform over 384 ids = ln 384 = 5.95) and
# the mean of the last 10 steps of 200 is ~2.5; assert a 2.0 drop to leave slack.
MIN_LOSS_DROP = 2.0


def _env(tmp_path: Path) -> dict:
    # One torch thread: the same arithmetic order in every process (bitwise-equal losses) and
    # no fight over the 2 cores with the test runner.
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1",
            "OLMO_TUI_RUNS_DIR": str(tmp_path / "runs")}


def _cmd(run_dir: Path, *extra: str) -> list:
    return [sys.executable, "-m", "engine", run_dir.name, "--preset", "tiny-cpu", "--run-dir", str(run_dir),
            *SMALL, *extra]


def train(run_dir: Path, *extra: str, timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run(_cmd(run_dir, *extra), capture_output=True, text=True, cwd=REPO,
                          env=_env(run_dir.parent), timeout=timeout)


def start(run_dir: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(_cmd(run_dir, *extra), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=REPO, env=_env(run_dir.parent))


def records(run_dir: Path) -> list:
    path = run_dir / "metrics.jsonl"
    if not path.is_file():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:  # a line being written right now
            pass
    return out


def wait_for(proc: subprocess.Popen, condition, what: str, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"run exited ({proc.returncode}) before {what}\n{out[-2000:]}\n{err[-2000:]}")
        time.sleep(0.01)
    proc.kill()
    pytest.fail(f"timed out waiting for {what}")


def ckpt_steps(run_dir: Path) -> list:
    return sorted(int(p.name[4:]) for p in (run_dir / "checkpoints").iterdir() if p.name[4:].isdigit())


def losses(run_dir: Path) -> dict:
    return {r["step"]: r["loss"] for r in records(run_dir)}


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory) -> Path:
    """One uninterrupted 200-step run that several tests compare against."""
    run_dir = tmp_path_factory.mktemp("ref") / "reference"
    result = train(run_dir)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return run_dir


def test_tiny_cpu_trains_200_steps_with_falling_loss_and_contract_metrics(reference_run):
    recs = records(reference_run)
    assert [r["step"] for r in recs] == list(range(1, 201))  # each step once, in order
    first, last10 = recs[0]["loss"], sum(r["loss"] for r in recs[-10:]) / 10
    assert first - last10 > MIN_LOSS_DROP, (first, last10)
    for key in ("step", "time", "total_steps", "tokens", "loss", "lr", "grad_norm"):
        assert key in recs[0], key
    timed = recs[-1]  # warm-up steps carry no throughput; later ones do
    assert timed["total_steps"] == 200 and timed["tokens"] == 200 * 512
    assert timed["tps"] > 0 and timed["tps_total"] == timed["tps"]
    assert timed["mfu"] is None  # CPU: no known peak, so no MFU rather than a wrong one
    assert 0 <= timed["data_pct"] < 100
    evals = [r for r in recs if "eval/lm/loss" in r]
    assert [r["step"] for r in evals] == [100, 200]
    assert evals[-1]["eval/lm/ppl"] == pytest.approx(2.718281828 ** evals[-1]["eval/lm/loss"], rel=1e-6)
    # the run directory of docs/CONTRACTS.md
    assert (reference_run / "config.toml").is_file()
    ckpts = sorted(p.name for p in (reference_run / "checkpoints").iterdir())
    assert ckpts == ["step100", "step200"]  # ephemeral step50/150 pruned by the permanent ones
    assert (reference_run / "checkpoints" / "step200" / "config.toml").is_file()


def test_sigkill_then_rerun_reproduces_every_later_loss(reference_run, tmp_path):
    run_dir = tmp_path / "killed"
    proc = start(run_dir)
    ckpt50 = run_dir / "checkpoints" / "step50" / ".complete.json"
    wait_for(proc, lambda: ckpt50.is_file() and max(losses(run_dir), default=0) >= 60,
             "the step-50 checkpoint and step 60")
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    killed_at = max(losses(run_dir))
    assert 60 <= killed_at < 100, killed_at

    # A checkpoint cut off mid-write, newer than step 50: shards truncated, marker never written,
    # plus the staging dir of another interrupted save. Resume must skip both.
    cut = run_dir / "checkpoints" / f"step{killed_at}"
    shutil.copytree(run_dir / "checkpoints" / "step50", cut)
    (cut / ".complete.json").unlink()
    for shard in (cut / "model_and_optim").glob("*.distcp"):
        shard.write_bytes(shard.read_bytes()[:100])
    shutil.copytree(cut, run_dir / "checkpoints" / f"step{killed_at - 1}-tmp")

    result = train(run_dir)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert f"resuming from {run_dir / 'checkpoints' / 'step50'} (step 50)" in result.stdout
    assert not (run_dir / "checkpoints" / f"step{killed_at - 1}-tmp").exists()
    resumed, reference = losses(run_dir), losses(reference_run)
    assert sorted(resumed) == list(range(1, 201))  # records past step 50 were rewritten once
    for step in range(51, 201):
        assert abs(resumed[step] - reference[step]) <= 1e-6, (step, resumed[step], reference[step])


@pytest.mark.parametrize("signum, exit_code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_signal_stops_gracefully_with_a_final_checkpoint(tmp_path, signum, exit_code):
    run_dir = tmp_path / "stopped"
    # Logging every 7th step: the step the run stops at must be logged all the same.
    proc = start(run_dir, "--trainer.metrics_collect_interval=7")
    wait_for(proc, lambda: max(losses(run_dir), default=0) >= 7, "step 7")
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == exit_code, out[-2000:] + err[-2000:]
    last = max(losses(run_dir))
    assert last < 200
    # the final checkpoint is of the last (logged) step
    assert (run_dir / "checkpoints" / f"step{last}" / ".complete.json").is_file()
    assert ckpt_steps(run_dir)[-1] == last
    assert f"stopped by {signal.Signals(signum).name} at step {last}" in out
    assert "Traceback" not in err


def test_load_path_loads_weights_and_hard_stop_keeps_the_schedule(reference_run, tmp_path):
    run_dir = tmp_path / "finetune"
    result = train(run_dir, f"--trainer.load_path={reference_run / 'checkpoints'}", "--trainer.hard_stop=5 steps")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert f"weights from trainer.load_path {reference_run / 'checkpoints' / 'step200'}" in result.stdout
    recs, reference = records(run_dir), records(reference_run)
    assert [r["step"] for r in recs] == [1, 2, 3, 4, 5] and recs[-1]["total_steps"] == 5
    assert recs[0]["loss"] < reference[0]["loss"] - MIN_LOSS_DROP  # trained weights, not a fresh init
    # hard_stop ends early without changing the LR schedule (still built for 200 steps)
    assert [r["lr"] for r in recs] == [r["lr"] for r in reference[:5]]
    assert (run_dir / "checkpoints" / "step5" / ".complete.json").is_file()
    # Rerunning now resumes from the run's own checkpoint; load_path is ignored.
    again = train(run_dir, f"--trainer.load_path={reference_run / 'checkpoints'}", "--trainer.hard_stop=6 steps")
    assert again.returncode == 0, again.stderr[-2000:]
    assert "resuming from" in again.stdout and "trainer.load_path ignored" in again.stdout


def _torchrun(run_dir: Path, nproc: int, *extra: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(nproc),
           "-m", "engine", run_dir.name, "--preset", "tiny-cpu", "--run-dir", str(run_dir), *SMALL,
           f"--launch.nproc_per_node={nproc}", "--trainer.hard_stop=12 steps",
           "--trainer.callbacks.checkpointer.ephemeral_save_interval=10", *extra]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, env=_env(run_dir.parent), timeout=240)


def test_runs_under_torchrun_with_one_process(reference_run, tmp_path):
    run_dir = tmp_path / "torchrun"
    result = _torchrun(run_dir, 1)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert f"run dir: {run_dir}" in result.stdout
    recs = records(run_dir)
    assert [r["step"] for r in recs] == list(range(1, 13))
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == ["step12"]
    reference = losses(reference_run)
    assert all(r["loss"] == reference[r["step"]] for r in recs)  # same arithmetic as a plain process


@pytest.mark.slow
def test_two_ranks_match_one_process(reference_run, tmp_path):
    """Data parallelism over 2 gloo ranks gives the single process's losses (same global batch),
    also on the step where a checkpoint is saved (its loss check all-reduces)."""
    run_dir = tmp_path / "two-ranks"
    result = _torchrun(run_dir, 2)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    reference = losses(reference_run)
    recs = records(run_dir)
    assert [r["step"] for r in recs] == list(range(1, 13))
    for r in recs:
        assert r["loss"] == pytest.approx(reference[r["step"]], rel=1e-4), r["step"]
    assert sorted(p.name for p in (run_dir / "checkpoints" / "step12" / "train").iterdir()) == [
        "rank0.pt", "rank1.pt"]


def test_non_finite_loss_stops_with_a_clear_error(tmp_path):
    run_dir = tmp_path / "diverged"
    result = train(run_dir, "--train_module.optim.lr=1e12", "--train_module.max_grad_norm=1e30",
                   "--train_module.scheduler.warmup_steps=0", "--trainer.max_duration=50 steps")
    assert result.returncode == 1, result.stdout[-2000:] + result.stderr[-2000:]
    error_lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(error_lines) == 1 and "training loss is nan" in error_lines[0].lower(), result.stderr[-2000:]
    assert "Traceback" not in result.stderr
