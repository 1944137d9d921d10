"""Checkpoints under faults: a manifest of sizes and CRC-32s written at commit catches a damaged
checkpoint (set aside, the previous one used, one line saying so); a full disk / file-size limit
during a save is one line with the path and the errno, exit 1, no stepN-tmp left, the previous
checkpoint intact (RLIMIT_FSIZE: runs without root)."""

from __future__ import annotations

import json
import resource
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from engine import checkpoint as ckpt
from engine.errors import UserError
from tiny_run import SMALL, run, small_config

REPO = Path(__file__).resolve().parents[2]


def _save(saver, step):
    model = torch.nn.Linear(64, 64)
    optim = torch.optim.AdamW(model.parameters())
    from torch.distributed.checkpoint.state_dict import get_state_dict

    model_sd, optim_sd = get_state_dict(model, optim)
    return saver.save(step, {"model": model_sd, "optim": optim_sd}, {"global_step": step})


def _shard(path: Path) -> Path:
    return next((path / ckpt.MODEL_AND_OPTIM).glob("*.distcp"))


def test_manifest_lists_every_file_with_its_size_and_catches_truncation_and_bit_flips(tmp_path):
    path = _save(ckpt.Checkpointer(tmp_path), 3)
    manifest = json.loads((path / ckpt.MANIFEST).read_text())["files"]
    on_disk = {str(f.relative_to(path)) for f in path.rglob("*") if f.is_file()} - {ckpt.MARKER, ckpt.MANIFEST}
    assert set(manifest) == on_disk and {"model_and_optim/.metadata", "train/rank0.pt"} <= on_disk
    assert all(size == (path / name).stat().st_size for name, (size, _) in manifest.items())
    assert ckpt.verify_checkpoint(path) is None

    shard = _shard(path)
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, one bit pattern changed
    shard.write_bytes(bytes(data))
    assert ckpt.verify_checkpoint(path, checksums=False) is None  # sizes alone cannot tell
    assert ckpt.verify_checkpoint(path) == f"model_and_optim/{shard.name} does not match its checksum"
    shard.write_bytes(bytes(data[:100]))
    assert ckpt.verify_checkpoint(path, checksums=False) == (
        f"model_and_optim/{shard.name} is 100 bytes, {len(data)} when saved")


def test_a_damaged_newest_checkpoint_is_set_aside_and_the_previous_one_used(tmp_path):
    saver = ckpt.Checkpointer(tmp_path)
    _save(saver, 2)
    newest = _save(saver, 4)
    _shard(newest).write_bytes(b"")
    (line,) = ckpt.set_aside_damaged(tmp_path)
    assert line.startswith("checkpoint step4 is damaged (model_and_optim/") and line.endswith(
        "set aside as step4-corrupt; resuming from the previous complete checkpoint, step2")
    assert ckpt.latest_checkpoint(tmp_path) == tmp_path / "step2" and (tmp_path / "step4-corrupt").is_dir()
    assert ckpt.set_aside_damaged(tmp_path) == []  # the corrupt one is not looked at again


def test_with_no_good_checkpoint_left_nothing_is_renamed_and_the_line_says_what_to_do(tmp_path):
    only = _save(ckpt.Checkpointer(tmp_path), 2)
    _shard(only).write_bytes(b"x")
    with pytest.raises(UserError) as info:
        ckpt.set_aside_damaged(tmp_path)
    assert str(info.value).startswith(f"trainer.save_folder: checkpoint {only} is damaged (")
    assert only.is_dir() and ckpt.latest_checkpoint(tmp_path) == only


def test_resume_skips_a_truncated_checkpoint_and_trains_on_from_the_previous(tmp_path, capsys):
    run_dir = tmp_path / "run"
    saving = ["--trainer.no_checkpoints=false", "--trainer.callbacks.checkpointer.save_interval=2",
              "--trainer.callbacks.checkpointer.ephemeral_save_interval=null"]
    assert run(small_config(*saving, steps=4), run_dir) == 0
    shard = _shard(run_dir / "checkpoints" / "step4")
    shard.write_bytes(shard.read_bytes()[: shard.stat().st_size // 2])  # before: a 65-line EOFError
    capsys.readouterr()
    assert run(small_config(*saving, steps=6), run_dir) == 0
    out = capsys.readouterr().out
    assert "checkpoint step4 is damaged" in out and "resuming from the previous complete checkpoint, step2" in out
    assert f"resuming from {run_dir / 'checkpoints' / 'step2'} (step 2)" in out
    assert ckpt.latest_checkpoint(run_dir / "checkpoints").name == "step6"


def test_load_path_problems_name_the_field(tmp_path):
    from engine.run import preflight

    source = _save(ckpt.Checkpointer(tmp_path / "other"), 2)
    cfg = small_config(f"--trainer.load_path={source}")
    _shard(source).write_bytes(b"")
    with pytest.raises(UserError) as info:
        preflight(cfg, tmp_path / "run")
    assert str(info.value).startswith(f"trainer.load_path: the checkpoint at {source} is damaged: model_and_optim/")
    bare = tmp_path / "bare"  # a DCP directory (no manifest) whose metadata is garbage
    bare.mkdir()
    (bare / ".metadata").write_bytes(b"garbage")
    with pytest.raises(UserError) as info:
        preflight(small_config(f"--trainer.load_path={bare}"), tmp_path / "run")
    assert str(info.value).startswith("trainer.load_path: cannot read the checkpoint metadata")  # was "SRC:"


def _olmo_train(run_dir: Path, steps: int, fsize: int = resource.RLIM_INFINITY):
    def limit():  # Python ignores SIGXFSZ, so an over-limit write fails with EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, resource.RLIM_INFINITY))

    args = [*SMALL, f"--trainer.max_duration={steps} steps", "--trainer.no_checkpoints=false",
            "--trainer.callbacks.checkpointer.save_interval=2",
            "--trainer.callbacks.checkpointer.ephemeral_save_interval=null"]
    return subprocess.run([sys.executable, "-m", "engine", "r", "--preset", "tiny-cpu", *args, "--run-dir",
                           str(run_dir)], capture_output=True, text=True, cwd=REPO, timeout=300, preexec_fn=limit)


def test_a_write_the_storage_refuses_is_one_line_with_path_and_errno(tmp_path):
    run_dir = tmp_path / "run"
    assert _olmo_train(run_dir, steps=2).returncode == 0
    step2 = run_dir / "checkpoints" / "step2"
    shard_size = _shard(step2).stat().st_size
    result = _olmo_train(run_dir, steps=4, fsize=shard_size // 2)  # the logs fit, a shard does not
    assert result.returncode == 1
    staging = run_dir / "checkpoints" / "step4-tmp"
    assert result.stderr.splitlines() == [  # before: 68 lines of tracebacks ending in RuntimeError
        f"error: cannot write checkpoint step4 to {staging}: [Errno 27 EFBIG] File too large; a file size limit "
        "was reached (`ulimit -f`, or the filesystem's largest file) (the previous checkpoint, step2, is intact: "
        "rerun the same command to resume from it)"]
    assert not staging.exists() and sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == ["step2"]
    assert ckpt.is_complete(step2) and ckpt.verify_checkpoint(step2) is None
    assert json.loads((run_dir / "exit.json").read_text())["exit_code"] == 1
