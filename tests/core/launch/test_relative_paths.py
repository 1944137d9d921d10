"""Relative paths mean the user's current directory, for the pre-flight and the engine alike.

The local launcher starts torchrun in the run dir, so the launcher makes every relative local
path of the schema absolute against the user's directory before the pre-flight and before
config.toml (olmo_tui/core/launch/preflight.py:launch_paths over engine/config/paths.py); `olmo-train`
does the same against its own directory; a Beaker launch refuses a relative path."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import typing
from pathlib import Path

import numpy as np
import pytest
import tomllib

from engine.config import ExperimentConfig, absolute_paths, relative_paths, resolve, schema_path_fields
from engine.config.paths import _sections_in
from engine.errors import UserError
from olmo_tui.cli.main import main as olmo_tui_main
from olmo_tui.core.launch.preflight import launch_paths
from olmo_tui.core.runs.registry import runs_root

# Strings of the schema that mention a file system but are not paths (with the reason).
NOT_PATHS = {"launch.beaker.image": "a Beaker image name or a Docker image reference"}
MENTIONS_FILES = re.compile(r"path|file|folder|\bdir\b|directory|python|\.jsonl", re.I)
SMALL = ["--model.d_model=32", "--model.n_layers=1", "--model.n_heads=2", "--model.mlp_multiple_of=32",
         "--dataset.kind=numpy", "--dataset.dtype=uint16", "--dataset.sequence_length=64",
         "--train_module.max_sequence_length=64", "--train_module.rank_microbatch_size=128",
         "--data_loader.global_batch_size=128", "--train_module.scheduler.warmup_steps=0",
         "--trainer.metrics_collect_interval=1"]


def string_fields(model=ExperimentConfig, prefix=""):
    """(dotted name, description) of every str-valued field of the schema, from the types."""
    def holds_str(annotation) -> bool:
        return annotation is str or any(holds_str(arg) for arg in typing.get_args(annotation))

    for name, info in model.model_fields.items():
        sections = list(_sections_in(info.annotation))
        if holds_str(info.annotation) and not sections:
            yield prefix + name, info.description or ""
        for section in sections:
            origin = typing.get_origin(info.annotation)
            key = "N." if origin is list else "NAME." if origin is dict else ""
            yield from string_fields(section, f"{prefix}{name}.{key}")


def test_every_path_field_of_the_schema_is_marked():
    """A new field that names a file system must say which kind of path it is (or be listed here)."""
    marked = schema_path_fields()
    mentioning = {dotted for dotted, description in string_fields()
                  if MENTIONS_FILES.search(dotted.rsplit(".", 1)[-1]) or MENTIONS_FILES.search(description)}
    assert mentioning - set(marked) == set(NOT_PATHS)
    assert {"dataset.paths", "dataset.eval_paths", "dataset.tokenizer.path", "trainer.save_folder",
            "trainer.load_path", "trainer.callbacks.downstream_evaluator.tasks",
            "dataset.sources.NAME.paths", "dataset.eval_sets.NAME.paths"} <= set(marked)


def test_mixture_paths_become_absolute():
    cfg = resolve(preset="tiny-cpu", overrides=[
        "--dataset.kind=numpy", "--dataset.sources.code.paths=[code/*.npy]", "--dataset.sources.code.ratio=1",
        "--dataset.eval_sets.docs.paths=held/docs.npy"])
    base = Path("/home/me/work")
    fixed = absolute_paths(cfg, base)
    assert fixed.dataset.sources["code"].paths == [str(base / "code/*.npy")]
    assert fixed.dataset.eval_sets["docs"].paths == [str(base / "held/docs.npy")]
    assert ("dataset.sources.code.paths", "code/*.npy") in relative_paths(cfg)


def test_only_relative_local_paths_change():
    cfg = resolve(preset="tiny-cpu", overrides=[
        "--dataset.kind=numpy",
        '--dataset.paths=[data/a.npy, ./b.npy, /abs/c.npy, "${DATA}/d.npy", ~/e.npy, "s3://bucket/f.npy"]',
        "--dataset.eval_paths=[held/*.npy]", "--dataset.tokenizer.path=tok/tokenizer.json",
        "--trainer.save_folder=ckpt", '--trainer.load_path="hf://org/model"',
        "--trainer.callbacks.downstream_evaluator.tasks=[sample-mc, tasks/mine.jsonl]",
        "--launch.backend=slurm", "--launch.slurm.python=.venv/bin/python",
    ])
    base = Path("/home/me/work")
    fixed = absolute_paths(cfg, base)
    assert fixed.dataset.paths == [str(base / "data/a.npy"), str(base / "b.npy"), "/abs/c.npy",
                                   "${DATA}/d.npy", "~/e.npy", "s3://bucket/f.npy"]
    assert fixed.dataset.eval_paths == [str(base / "held/*.npy")]  # a glob stays a glob
    assert fixed.dataset.tokenizer.path == str(base / "tok/tokenizer.json")
    assert (fixed.trainer.save_folder, fixed.trainer.load_path) == (str(base / "ckpt"), "hf://org/model")
    assert fixed.trainer.callbacks.downstream_evaluator.tasks == ["sample-mc", str(base / "tasks/mine.jsonl")]
    assert fixed.launch.slurm.python == str(base / ".venv/bin/python")
    assert fixed.dataset.work_dir == cfg.dataset.work_dir == "~/.cache/olmo-tui/data"
    assert relative_paths(fixed) == [] and absolute_paths(fixed, Path("/elsewhere")) is fixed
    slurm = ["--launch.backend=slurm", "--launch.slurm.python=python3"]
    bare = absolute_paths(resolve(preset="tiny-cpu", overrides=slurm), base)
    assert bare.launch.slurm.python == "python3"  # a command looked up on PATH, not a path


def test_beaker_refuses_a_relative_path_and_keeps_its_container_paths(capsys):
    beaker = ["--launch.backend=beaker", "--launch.beaker.run_dir=results/run",
              "--launch.beaker.mounts=[{kind: weka, source: bucket, mount_path: data}]"]
    ok = resolve(preset="tiny-cpu", overrides=beaker)
    assert launch_paths(ok) is ok  # the container's own paths are never rewritten
    relative_data = ["--dataset.kind=numpy", "--dataset.paths=[data/x.npy]"]
    cfg = resolve(preset="tiny-cpu", overrides=[*beaker, *relative_data])
    with pytest.raises(UserError) as err:
        launch_paths(cfg)
    assert err.value.field == "dataset.paths" and "'data/x.npy' is a relative path" in str(err.value)
    assert olmo_tui_main(["--preset", "tiny-cpu", *beaker, *relative_data, "--dry-run"]) == 2
    out = capsys.readouterr()
    assert out.out == "" and out.err.strip().splitlines() == [f"error: {err.value}"]


def test_a_slurm_job_script_and_config_get_the_users_directory(tmp_path, monkeypatch, capsys):
    """The job script `cd`s into the run dir: the dry run shows what a launch submits, absolute."""
    monkeypatch.chdir(tmp_path)
    slurm = ["--launch.backend=slurm", f"--launch.slurm.shared_paths=[{tmp_path}]",
             "--launch.slurm.python=.venv/bin/python"]
    data = ["--dataset.kind=numpy", "--dataset.paths=data/train.npy", "--trainer.save_folder=ckpt"]
    assert olmo_tui_main(["--preset", "tiny-cpu", *slurm, *data, "--dry-run", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["config"]["dataset"]["paths"] == [str(tmp_path / "data" / "train.npy")]
    assert shown["config"]["trainer"]["save_folder"] == str(tmp_path / "ckpt")
    [node_command] = [line for line in shown["script"].splitlines() if "torch.distributed.run" in line]
    assert node_command.split()[0] == str(tmp_path / ".venv" / "bin" / "python")


def write_tokens(path: Path, count: int, seed: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    np.random.default_rng(seed).integers(0, 256, count, dtype=np.uint16).tofile(path)


def olmo(*args: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "olmo_tui", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=timeout)


def test_a_headless_launch_from_another_directory_reads_and_writes_the_users_relative_paths(tmp_path):
    write_tokens(tmp_path / "data" / "train.npy", 8192, 0)
    write_tokens(tmp_path / "data" / "eval.npy", 2048, 1)
    out = olmo("--preset", "tiny-cpu", *SMALL, "--dataset.paths=data/train.npy",  # one path: a list of one
               "--dataset.eval_paths=[./data/eval.npy]", "--trainer.save_folder=ckpt",
               "--trainer.callbacks.lm_evaluator.eval_interval=2",
               "--trainer.callbacks.lm_evaluator.eval_batches=1",
               "--trainer.callbacks.checkpointer.ephemeral_save_interval=1", "--trainer.max_duration=2 steps",
               cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    [run_dir] = [p for p in runs_root().iterdir()]
    saved = tomllib.loads((run_dir / "config.toml").read_text())
    assert saved["dataset"]["paths"] == [str(tmp_path / "data" / "train.npy")]
    assert saved["dataset"]["eval_paths"] == [str(tmp_path / "data" / "eval.npy")]
    assert saved["trainer"]["save_folder"] == str(tmp_path / "ckpt")
    assert (tmp_path / "ckpt" / "step2").is_dir() and not (run_dir / "ckpt").exists()  # in the user's folder
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 2] and "eval/lm/loss" in records[-1]  # the eval file was read

    # A relative path that does not exist: one line naming the field and where it looked, exit 2,
    # nothing left behind.
    missing = olmo("--preset", "tiny-cpu", *SMALL, "--dataset.paths=[data/missing.npy]", cwd=tmp_path,
                   timeout=60)
    assert missing.returncode == 2 and missing.stdout == ""
    [line] = missing.stderr.strip().splitlines()
    assert line.startswith("error: dataset.paths:") and str(tmp_path / "data" / "missing.npy") in line
    assert [p for p in runs_root().iterdir()] == [run_dir]
    listed = olmo("runs", "--json", cwd=tmp_path, timeout=60)
    assert [r["run_dir"] for r in json.loads(listed.stdout)] == [str(run_dir)]
