"""A launched run on a disk that fills up: a real (small) tmpfs, so a real ENOSPC. Mounting needs
root (CAP_SYS_ADMIN): elsewhere these tests skip, and tests/engine/test_checkpoint_faults.py
covers the same path without root through RLIMIT_FSIZE."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from engine import checkpoint as ckpt
from engine.config import resolve
from olmo_tui.core.backends.base import RunStatus, set_backend
from olmo_tui.core.backends.local import LocalBackend
from olmo_tui.core.launch import launcher, run_manager
from olmo_tui.core.runs.registry import Registry
from olmo_tui.core.runs.tailing import wait_for

STUB_DIR = Path(__file__).resolve().parents[2] / "launcher_stub"
TINY = ["--model.d_model=32", "--model.n_layers=1", "--model.n_heads=2", "--model.mlp_multiple_of=32",
        "--dataset.kind=synthetic", "--dataset.sequence_length=64", "--train_module.max_sequence_length=64",
        "--train_module.rank_microbatch_size=128", "--data_loader.global_batch_size=128",
        "--trainer.callbacks.lm_evaluator.enabled=false"]


@pytest.fixture
def small_disk(tmp_path, monkeypatch):
    """A runs root on a tmpfs of `size` bytes."""
    mounted = []

    def make(size: int) -> Path:
        root = tmp_path / "disk"
        root.mkdir()
        if subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(root)],
                          capture_output=True).returncode != 0:
            pytest.skip("mounting a tmpfs needs root")
        mounted.append(root)
        monkeypatch.setenv("OLMO_TUI_RUNS_DIR", str(root))
        return root

    yield make
    for root in mounted:
        subprocess.run(["umount", "-l", str(root)], check=False)


def finish(run, timeout=300):
    registry = Registry()
    assert wait_for(lambda: run_manager.refresh_run(registry.get(run.id), registry).terminal, timeout)
    return registry.get(run.id)


def test_a_launched_run_whose_checkpoint_fills_the_disk_names_it(small_disk):
    small_disk(1 << 20)  # the step-2 checkpoint (~0.6 MB) fits, the step-4 one does not
    cfg = resolve(preset="tiny-cpu", overrides=[*TINY, "--trainer.max_duration=4 steps",
                                                "--trainer.no_checkpoints=false",
                                                "--trainer.callbacks.checkpointer.save_interval=2",
                                                "--trainer.callbacks.checkpointer.ephemeral_save_interval=null"])
    run = finish(launcher.launch(cfg, preset="tiny-cpu"))
    folder = Path(run.run_dir) / "checkpoints"
    # before: `lost`, "the process vanished without recording an exit code", step4-tmp left
    assert (run.status, run.exit_code) == (RunStatus.FAILED, 1), run
    assert run.message.startswith(f"error: cannot write checkpoint step4 to {folder / 'step4-tmp'}: "
                                  "[Errno 28 ENOSPC] No space left on device;"), run.message
    assert "the previous checkpoint, step2, is intact" in run.message
    assert sorted(p.name for p in folder.iterdir()) == ["step2"] and ckpt.verify_checkpoint(folder / "step2") is None


def test_exit_json_is_written_even_when_the_run_filled_the_disk(small_disk, monkeypatch):
    root = small_disk(256 << 10)
    monkeypatch.setenv("PYTHONPATH", str(STUB_DIR))
    monkeypatch.setenv("STUB_STEPS", "100000")
    set_backend("local", LocalBackend(engine_module="stub_engine"))
    try:
        run = launcher.launch(resolve(preset="tiny-cpu"), preset="tiny-cpu")
        assert wait_for(lambda: (Path(run.run_dir) / "metrics.jsonl").exists(), 60)
        with open(root / "filler", "wb") as filler:  # whatever else fills the disk
            try:
                while True:
                    filler.write(bytes(64 << 10))
                    filler.flush()
            except OSError:
                pass
        run = finish(run, 60)
    finally:
        set_backend("local", None)
    # The job died writing its metrics; the wrapper's exit.json used the space it had reserved.
    assert (run.status, run.exit_code) == (RunStatus.FAILED, 1), run
    assert (Path(run.run_dir) / "exit.json").exists()
    assert "[Errno 28 ENOSPC]" in run.message, run.message
