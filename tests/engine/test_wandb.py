"""W&B logging: an offline run directory that holds the logged metrics (read back from W&B's own
run file), the API key kept out of every file, and the user errors (package missing, online
without a key). Skipped cleanly where wandb is not installed."""

from __future__ import annotations

import struct
import sys
import time
from pathlib import Path

import pytest

import tiny_run

WANDB = ["--trainer.callbacks.wandb.enabled=true", "--trainer.metrics_collect_interval=1"]
SENTINEL = "sentinel-api-key-0123456789abcdef0123"  # 40 characters, like a real key


@pytest.fixture
def wandb_env(tmp_path, monkeypatch):
    """Every place wandb may write outside the run dir, inside tmp_path (so it can be searched)."""
    home = tmp_path / "wandb-home"
    for var in ("WANDB_CONFIG_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR", "WANDB_ARTIFACT_DIR"):
        monkeypatch.setenv(var, str(home / var.lower()))
    monkeypatch.delenv("WANDB_MODE", raising=False)
    return home


def read_wandb_records(path: Path):
    """The protobuf records of a W&B run file (.wandb): a 7-byte header (':W&B', magic, version),
    then LevelDB-log framing in 32 KiB blocks: crc32 (4) | length (2) | type (1) | data, where a
    record split over blocks is FIRST + MIDDLE* + LAST and FULL is a whole one."""
    from wandb.proto import wandb_internal_pb2 as pb

    data = path.read_bytes()
    assert data[:4] == b":W&B"
    block, pos, pending = 32768, 7, b""
    while pos + 7 <= len(data):
        left = block - pos % block
        if left < 7:  # too small for a header: the writer zero-fills it
            pos += left
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        if kind == 0:  # zero padding up to the end of the block
            pos += left
            continue
        if pos + 7 + length > len(data):  # still being written
            break
        chunk, pos = data[pos + 7:pos + 7 + length], pos + 7 + length
        if kind in (1, 4):  # FULL, LAST
            record = pb.Record()
            record.ParseFromString(pending + chunk)
            pending = b""
            yield record
        else:  # FIRST, MIDDLE
            pending += chunk


def record_types(run_file: Path):
    return [record.WhichOneof("record_type") for record in read_wandb_records(run_file)]


def history(run_file: Path):
    import json

    rows = []
    for record in read_wandb_records(run_file):
        if record.WhichOneof("record_type") == "history":
            rows.append({item.key or "/".join(item.nested_key): json.loads(item.value_json)
                         for item in record.history.item})
    return rows


def test_offline_run_dir_holds_the_logged_metrics_and_no_key(tmp_path, wandb_env, monkeypatch, capsys):
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_API_KEY", SENTINEL)  # present, and must not end up in any file
    run_dir = tmp_path / "run"
    cfg = tiny_run.small_config(*WANDB, "--trainer.callbacks.downstream_evaluator.enabled=true",
                                "--trainer.callbacks.downstream_evaluator.eval_interval=2",
                                "--trainer.callbacks.downstream_evaluator.max_instances=4", steps=3)
    assert tiny_run.run(cfg, run_dir) == 0
    assert f"wandb: offline run " in capsys.readouterr().out

    offline_runs = list((run_dir / "wandb").glob("offline-run-*"))
    assert len(offline_runs) == 1
    run_file = next(offline_runs[0].glob("run-*.wandb"))
    # W&B's own process writes the file; wait (bounded) until it has written the run's exit record.
    deadline = time.monotonic() + 30
    while "exit" not in record_types(run_file) and time.monotonic() < deadline:
        time.sleep(0.2)
    rows = history(run_file)
    assert len(rows) == 3, f"record types in {run_file}: {record_types(run_file)}"
    logged = tiny_run.metrics(run_dir)
    assert [row["_step"] for row in rows] == [record["step"] for record in logged] == [1, 2, 3]
    for row, record in zip(rows, logged, strict=True):
        for key, value in record.items():
            if key != "step" and value is not None:
                assert row[key] == pytest.approx(value), key
    assert "eval/downstream/sample-mc/acc" in rows[1]

    searched = 0
    for root in (run_dir, wandb_env):
        for path in root.rglob("*"):
            if path.is_file():
                assert SENTINEL.encode() not in path.read_bytes(), path
                searched += 1
    assert searched > 3


def test_online_mode_needs_the_key_in_the_environment(tmp_path, wandb_env, monkeypatch, capsys):
    pytest.importorskip("wandb")
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    run_dir = tmp_path / "run"
    cfg = tiny_run.small_config(*WANDB, "--trainer.callbacks.wandb.mode=online")
    assert tiny_run.run(cfg, run_dir) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: trainer.callbacks.wandb.mode: online needs WANDB_API_KEY in the environment "
                   "(it is never read from the config); or use mode = offline"]
    assert not run_dir.exists()  # nothing left behind


def test_missing_package_is_one_clear_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "wandb", None)  # what an environment without wandb looks like
    run_dir = tmp_path / "run"
    assert tiny_run.run(tiny_run.small_config(*WANDB), run_dir) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: trainer.callbacks.wandb.enabled: the wandb package is not installed: "
                   "pip install 'olmo-tui[wandb]', or set trainer.callbacks.wandb.enabled = false"]
    assert not run_dir.exists()
