"""The headless front door with --beaker: shorthands, --dry-run's exact spec, --save-spec, a
followed job's exit code, and secrets that never land anywhere."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from beaker_fixtures import REPO, run_cli, beaker_env, fake_beaker  # noqa: F401  (fixtures)

from engine.config import ConfigError, resolve
from olmo_tui.cli.beaker_flags import add_beaker_arguments, beaker_overrides
from olmo_tui.core.backends.beaker.spec import node_command
from olmo_tui.core.runs.registry import Registry

pytestmark = pytest.mark.timeout(90)


def shorthand(*argv: str):
    parser = argparse.ArgumentParser(allow_abbrev=False)
    add_beaker_arguments(parser)
    return beaker_overrides(parser.parse_args(argv))


def test_shorthands_map_onto_launch_beaker_fields():
    overrides = shorthand("--beaker", "--gpus", "2", "--nodes", "1", "--priority", "normal", "--not-preemptible",
                          "--weka", "oe-data", "--weka", "scratch:/scratch", "--cluster", "ai2/jupiter",
                          "--env", "WANDB_MODE=offline", "--env-secret", "HF_TOKEN=team-hf", "--debug", "--allow-dirty")
    cfg = resolve(preset="tiny-cpu", overrides=overrides)
    bk = cfg.launch.beaker
    assert cfg.launch.backend == "beaker" and cfg.launch.debug
    assert (bk.gpus, bk.nodes, bk.priority, bk.preemptible, bk.allow_dirty) == (2, 1, "normal", False, True)
    assert [(m.source, m.mount_path) for m in bk.mounts] == [("oe-data", None), ("scratch", "/scratch")]
    assert bk.clusters == ["ai2/jupiter"] and bk.env == {"WANDB_MODE": "offline"}
    assert [(s.env_var, s.secret) for s in bk.secrets] == [("HF_TOKEN", "team-hf")]
    # the dotted form is the same thing
    same = resolve(preset="tiny-cpu", overrides=["--launch.backend=beaker", "--launch.beaker.gpus=2",
                                                 "--launch.beaker.preemptible=false"])
    assert same.launch.beaker.gpus == 2 and not same.launch.beaker.preemptible
    assert shorthand() == []


def test_bad_shorthand_is_a_config_error():
    with pytest.raises(ConfigError, match="launch.beaker.env: --env takes NAME=VALUE"):
        shorthand("--env", "NOVALUE")


def test_dry_run_prints_the_exact_spec_and_command(tmp_path):
    spec_path = tmp_path / "spec.json"
    out = run_cli("--preset", "tiny-cpu", "--beaker", "--launch.beaker.code_in_image", "--gpus", "1", "--nodes", "2",
                  "--weka", "oe-data", "--env-secret", "HF_TOKEN=team-hf", "--debug", "--dry-run",
                  "--save-spec", str(spec_path))
    assert out.returncode == 0, out.stderr
    spec = json.loads(out.stdout)
    assert json.loads(spec_path.read_text()) == spec
    task = spec["tasks"][0]
    assert task["command"] == node_command() and task["replicas"] == 2
    assert {"name": "HF_TOKEN", "secret": "team-hf"} in task["envVars"]
    assert "each node runs:" in out.stderr and "torch.distributed.run" in out.stderr
    assert not list(tmp_path.glob(".*.tmp"))
    out = run_cli("--preset", "tiny-cpu", "--beaker", "--launch.beaker.code_in_image", "--dry-run", "--json")
    record = json.loads(out.stdout)
    assert record["command"] == node_command() and record["spec"]["tasks"][0]["image"] == {"beaker": "olmo-tui"}


def test_dry_run_bad_values_exit_2_with_one_line(tmp_path):
    out = run_cli("--preset", "tiny-cpu", "--beaker", "--priority", "asap", "--dry-run")
    assert out.returncode == 2 and "--priority: invalid choice" in out.stderr
    out = run_cli("--preset", "tiny-cpu", "--beaker", "--env", "X", "--dry-run")
    assert out.returncode == 2 and out.stderr.strip() == "error: launch.beaker.env: --env takes NAME=VALUE, got 'X'"
    out = run_cli("--preset", "tiny-cpu", "--beaker", "--launch.beaker.code_in_image", "--dry-run",
                  "--save-spec", str(tmp_path / "no-such-dir" / "spec.json"))
    assert out.returncode == 2 and "\nerror: --save-spec: cannot write" in out.stderr
    assert out.stderr.startswith("warning: launch.beaker.run_dir")  # the run dir is on no mount
    assert not (tmp_path / "no-such-dir").exists()


def wait_for_experiment(state, timeout: float = 30):
    deadline = time.monotonic() + timeout
    while not state.experiments:
        assert time.monotonic() < deadline, "the headless command did not create an experiment"
        time.sleep(0.05)
    return state.only_experiment().id


def test_headless_follows_a_failing_job_and_keeps_secrets_out(beaker_env, fake_beaker, monkeypatch, tmp_path):  # noqa: F811
    secret_value = "hf_s3cr3t-VALUE-that-must-not-leak"
    monkeypatch.setenv("HF_TOKEN", secret_value)  # in the launching shell, as a researcher's would be
    spec_path = tmp_path / "submitted.json"
    cmd = [sys.executable, "-m", "olmo_tui", "--preset", "tiny-cpu", "--beaker", "--launch.beaker.code_in_image",
           "--env-secret", "HF_TOKEN=team-hf", "--save-spec", str(spec_path)]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**__import__("os").environ, "OLMO_TUI_BEAKER_TIMEOUT": "5"})
    state = fake_beaker.state
    exp = wait_for_experiment(state)
    state.start_job(exp)
    state.log(exp, '[metrics] {"step": 1, "time": 1.0, "total_steps": 3, "loss": 5.0}', "RuntimeError: boom")
    threading.Timer(0.5, state.finish_job, (exp, 7)).start()
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 1, stderr
    assert "RuntimeError: boom" in stdout and f"/ex/{exp}" in stdout  # the log, and the workload URL
    assert "failed, exit code 7" in stderr
    (run,) = Registry().all()
    assert (run.status, run.exit_code, run.workload_id) == ("failed", 7, exp)
    assert json.loads(spec_path.read_text()) == state.specs[0]

    # secrets: neither the HF token from the shell nor the Beaker token is anywhere
    spec_env = [e.get("value", "") for e in state.specs[0]["tasks"][0]["envVars"]]
    places = {"stdout": stdout, "stderr": stderr, "spec env values": "\n".join(spec_env)}
    db = Registry().path
    for path in [db, *db.parent.glob(db.name + "-*"), *Path(run.run_dir).rglob("*"), spec_path]:
        if path.is_file():
            places[str(path)] = path.read_bytes().decode(errors="replace")
    for value in (secret_value, fake_beaker.TOKEN, *state.secrets.values()):
        leaks = [where for where, text in places.items() if value in text]
        assert not leaks, f"secret found in {leaks}"
    assert {"name": "HF_TOKEN", "secret": "team-hf"} in state.specs[0]["tasks"][0]["envVars"]
