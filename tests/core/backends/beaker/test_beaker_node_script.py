"""The job's node script, run here by bash the way a Beaker node runs it: clone at the commit,
decode the config, torchrun with a static rendezvous from the BEAKER_* variables."""

from __future__ import annotations

import base64
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

from beaker_fixtures import REPO
from engine.config import resolve
from olmo_tui.core.backends.beaker.git_state import GitState
from olmo_tui.core.backends.beaker.spec import job_env, node_command


@pytest.mark.timeout(120)
def test_node_script_clones_decodes_and_runs_torchrun(tmp_path):
    head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True,
                          check=True).stdout.strip()
    # The node runs the committed code; the config must be one that code reads. Resolve it with
    # the commit's own schema (this shared working tree may hold uncommitted schema changes).
    committed = tmp_path / "committed"
    subprocess.run(["git", "clone", "-q", str(REPO), str(committed)], check=True)
    subprocess.run(["git", "-C", str(committed), "checkout", "-q", head], check=True)
    overrides = ["--launch.backend=beaker", f"--launch.beaker.run_dir={tmp_path / 'run'}",
                 "--run_name=node-test", "--train_module.optim.lr=0.0042"]
    toml = subprocess.run(
        [sys.executable, "-c", "import sys; from engine.config import resolve, to_toml; "
         "sys.stdout.write(to_toml(resolve(preset='tiny-cpu', overrides=sys.argv[1:])))", *overrides],
        cwd=committed, env={**os.environ, "PYTHONPATH": str(committed)}, capture_output=True, text=True, check=True,
    ).stdout
    cfg = resolve(preset="tiny-cpu", overrides=overrides)
    # The rendezvous port comes from the run id (spec.rendezvous_port): a fresh id, so another
    # suite running this test on the machine at the same time listens elsewhere.
    run_id = f"node-test-{secrets.token_hex(4)}"
    env = job_env(cfg, run_id, GitState(remote=str(committed), commit=head, dirty=False))
    env["OLMO_TUI_CONFIG_B64"] = base64.b64encode(toml.encode()).decode()
    # What Beaker sets on a node of a one-replica job with no GPU; the leader's host name is
    # only set with leader selection, so the script falls back to this host.
    beaker_vars = {"BEAKER_REPLICA_COUNT": "1", "BEAKER_REPLICA_RANK": "0", "BEAKER_ASSIGNED_GPU_COUNT": "0"}
    path = f"{Path(sys.executable).parent}:{os.environ['PATH']}"  # `python` is the image's python
    node_env = {"PATH": path, "HOME": str(tmp_path), "TMPDIR": str(tmp_path), **env, **beaker_vars}
    out = subprocess.run(node_command(["--dry-run"]), env=node_env, capture_output=True, text=True, timeout=110)
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"[olmo-tui] cloning {committed} at {head}" in out.stdout
    assert "[olmo-tui] node 0 of 1, 1 processes, rendezvous at 127.0.0.1:" in out.stdout
    # the engine (from the clone) read the decoded config: the dry run prints it back
    assert 'run_name = "node-test"' in out.stdout and "lr = 0.0042" in out.stdout
    assert (tmp_path / "run").is_dir()
    clones = list(tmp_path.glob("tmp.*/src"))
    assert len(clones) == 1 and subprocess.run(["git", "-C", str(clones[0]), "rev-parse", "HEAD"], capture_output=True,
                                               text=True).stdout.strip() == head
