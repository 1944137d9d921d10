"""Fast checks of the SLURM backend's pieces that need no cluster: the job script (generated
for real configs, checked by bash itself), the launch.slurm config rules through the real CLI
(exit 2, one line naming the field, nothing left behind), the state mapping, and bounded
SLURM commands (a missing tool; a controller that accepts the connection and never answers)."""

from __future__ import annotations

import os
import socket
import subprocess
import threading
from pathlib import Path

import pytest

from cli_helpers import run_cli
from engine.config import ConfigError, resolve
from olmo_tui.core.backends.base import BackendError, RunStatus
from olmo_tui.core.backends.slurm import commands
from olmo_tui.core.backends.slurm.backend import SlurmBackend
from olmo_tui.core.backends.slurm.status import ended_status

SLURM = ["--launch.backend=slurm"]


def script_for(*overrides: str, run_dir: Path = Path("/shared/runs/r1")) -> str:
    cfg = resolve(preset="tiny-cpu", overrides=[*SLURM, *overrides])
    return SlurmBackend(python="/opt/venv/bin/python").script("r1", run_dir, cfg)


def test_dry_run_prints_an_sbatch_script_with_srun_and_a_torchrun_rendezvous():
    out = run_cli("--preset", "tiny-cpu", "--launch.backend=slurm", "--launch.slurm.nodes=2", "--dry-run")
    assert out.returncode == 0, out.stderr
    script = out.stdout
    assert script.startswith("#!/bin/bash\n")
    for line in ("#SBATCH --nodes=2", "#SBATCH --ntasks-per-node=1", "#SBATCH --signal=B:USR1@120",
                 "#SBATCH --requeue", "#SBATCH --open-mode=append"):
        assert line in script.splitlines()
    assert 'scontrol show hostnames "$SLURM_JOB_NODELIST"' in script
    srun = script[script.index("srun "):]
    for part in ("-m torch.distributed.run", '"--nnodes=$SLURM_NNODES"', "--rdzv-backend=c10d",
                 '"--rdzv-endpoint=$head_addr:$port"', '"--rdzv-id=$SLURM_JOB_ID"', "-m engine tiny-cpu"):
        assert part in srun
    assert "port=$(( 20000 + SLURM_JOB_ID % 10000 ))" in script
    assert "2 node(s) x 1 rank(s)" in out.stderr
    assert subprocess.run(["bash", "-n"], input=script, text=True).returncode == 0


def test_every_field_reaches_its_sbatch_line_and_the_script_parses(tmp_path):
    run_dir = tmp_path / "runs with space" / "r1"
    script = script_for(
        "--launch.slurm.partition=gpu", "--launch.slurm.account=lab", "--launch.slurm.qos=high",
        "--launch.slurm.gpus_per_node=8", "--launch.nproc_per_node=8", "--launch.slurm.cpus_per_task=32",
        "--data_loader.global_batch_size=16384",
        "--launch.slurm.mem=0", "--launch.slurm.time_limit=2-00:00:00", "--launch.slurm.constraint=h100",
        "--launch.slurm.exclusive=true", "--launch.slurm.requeue=false", "--launch.slurm.signal_before_limit_s=300",
        "--launch.slurm.extra_sbatch=['--mail-type=END', '--comment=olmo']",
        "--launch.slurm.setup=['module load cuda/12.4', 'source ~/venv/bin/activate']", run_dir=run_dir)
    lines = script.splitlines()
    for expected in ("--partition=gpu", "--account=lab", "--qos=high", "--gpus-per-node=8", "--cpus-per-task=32",
                     "--mem=0", "--time=2-00:00:00", "--constraint=h100", "--exclusive", "--no-requeue",
                     "--signal=B:USR1@300", "--mail-type=END", "--comment=olmo"):
        assert f"#SBATCH {expected}" in lines
    assert "#SBATCH --requeue" not in lines
    assert lines.index("module load cuda/12.4") < next(i for i, l in enumerate(lines) if l.startswith("srun "))
    assert "--nproc-per-node=8" in script
    assert f"cd '{run_dir}'" in lines  # quoted: the space stays inside one word
    assert subprocess.run(["bash", "-n"], input=script, text=True).returncode == 0


@pytest.mark.parametrize("override, field", [
    ("--launch.slurm.time_limit=soon", "launch.slurm.time_limit"),
    ("--launch.slurm.mem=lots", "launch.slurm.mem"),
    ("--launch.slurm.partition=a b", "launch.slurm.partition"),
    ("--launch.slurm.extra_sbatch=['--output=/tmp/x']", "launch.slurm.extra_sbatch"),
    ("--launch.slurm.extra_sbatch=['mail-type=END']", "launch.slurm.extra_sbatch"),
    ('--launch.slurm.setup=["echo a\\nrm -rf /"]', "launch.slurm.setup"),  # YAML \n: a newline
    ("--launch.slurm.nodes=0", "launch.slurm.nodes"),
    ("--launch.slurm.signal_before_limit_s=0", "launch.slurm.signal_before_limit_s"),
    ("--launch.slurm.shared_paths=['relative/dir']", "launch.slurm.shared_paths"),
    ("--launch.slurm.container=pyxis", "launch.slurm.container"),
])
def test_a_bad_slurm_field_is_one_line_naming_it(override, field, isolated_xdg):
    out = run_cli("--preset", "tiny-cpu", *SLURM, override, "--dry-run")
    assert out.returncode == 2, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {field}"), out.stderr
    assert "Traceback" not in out.stderr and out.stdout == ""


def test_more_ranks_than_gpus_per_node_is_refused():
    with pytest.raises(ConfigError) as err:
        resolve(preset="tiny-cpu", overrides=[*SLURM, "--launch.slurm.gpus_per_node=4", "--launch.nproc_per_node=8"])
    assert "launch.nproc_per_node, launch.slurm.gpus_per_node" in str(err.value)


def test_launch_outside_the_shared_paths_is_refused_and_leaves_nothing(isolated_xdg, tmp_path):
    runs = Path(os.environ["OLMO_TUI_RUNS_DIR"])
    out = run_cli("--preset", "tiny-cpu", *SLURM)  # no shared path marked at all
    assert out.returncode == 2 and out.stderr.startswith("error: launch.slurm.shared_paths:"), out.stderr
    assert len(out.stderr.strip().splitlines()) == 1
    out = run_cli("--preset", "tiny-cpu", *SLURM, f"--launch.slurm.shared_paths=[{runs.parent}]",
                  f"--trainer.save_folder={tmp_path}/elsewhere")
    assert out.returncode == 2 and out.stderr.startswith("error: trainer.save_folder:"), out.stderr
    assert not runs.exists() or not any(runs.iterdir())
    listed = run_cli("runs", "--json")
    assert listed.returncode == 0 and listed.stdout.strip() == "[]"


@pytest.mark.parametrize("state, code, cancel, time_limit, status", [
    ("COMPLETED", 0, False, False, RunStatus.SUCCEEDED),
    (None, 0, False, False, RunStatus.SUCCEEDED),
    ("FAILED", 138, False, True, RunStatus.CANCELLED),
    ("FAILED", 138, True, False, RunStatus.CANCELLED),
    ("CANCELLED", None, False, False, RunStatus.CANCELLED),
    ("TIMEOUT", None, False, False, RunStatus.FAILED),
    ("NODE_FAIL", None, False, False, RunStatus.FAILED),
    ("PREEMPTED", None, False, False, RunStatus.FAILED),
    ("OUT_OF_MEMORY", 0, False, False, RunStatus.FAILED),
    ("FAILED", 2, False, False, RunStatus.FAILED),
    (None, None, False, False, RunStatus.LOST),
])
def test_ended_states_map_to_registry_statuses(state, code, cancel, time_limit, status):
    got, message = ended_status(state, code, cancel, time_limit)
    assert got == status
    if state in ("TIMEOUT", "NODE_FAIL", "PREEMPTED"):
        assert message  # the user is told which


def test_a_missing_slurm_tool_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(BackendError, match="`squeue` is not installed"):
        commands.squeue("1")


def test_a_controller_that_never_answers_is_a_bounded_error(monkeypatch, tmp_path):
    """squeue itself, pointed at a listening socket that accepts and stays silent."""
    if subprocess.run(["which", "squeue"], capture_output=True).returncode:
        pytest.skip("squeue is not installed (apt-get install slurm-wlm)")
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    accepted = []
    threading.Thread(target=lambda: [accepted.append(server.accept()) for _ in range(8)], daemon=True).start()
    conf = tmp_path / "slurm.conf"
    conf.write_text(f"ClusterName=silent\nSlurmctldHost=silent(127.0.0.1)\nSlurmctldPort={server.getsockname()[1]}\n"
                    "AuthType=auth/none\nCredType=cred/none\nMessageTimeout=60\n"
                    "NodeName=silent CPUs=1\nPartitionName=p Nodes=silent\n")
    monkeypatch.setenv("SLURM_CONF", str(conf))
    try:
        with pytest.raises(BackendError, match="did not answer within 1 s"):
            commands.squeue("1", timeout_s=1.0)
    finally:
        server.close()


@pytest.mark.parametrize("root", ["runs $(touch PWNED1) $HOME", "runs `touch PWNED2` 'q' \\"])
def test_a_runs_root_with_shell_syntax_stays_text_when_the_job_script_runs(root, tmp_path):
    """The job script really runs (fake srun / scontrol, a fake python that records its argv):
    `$(...)` and backquotes in the run dir reach torchrun as text and never execute (they used
    to be double-quoted on the torchrun line, and so expanded at job start)."""
    run_dir = tmp_path / root / "r1"
    run_dir.mkdir(parents=True)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fakes = {
        "scontrol": '#!/bin/bash\n[ "$2" = hostnames ] && echo node1\nexit 0\n',
        "srun": '#!/bin/bash\nwhile [[ "$1" == --* ]]; do shift; done\nexec "$@"\n',
        "python": '#!/usr/bin/env python3\nimport json, sys\njson.dump(sys.argv[1:], open(sys.argv[0] + ".argv", "w"))\n',
    }
    for name, text in fakes.items():
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    cfg = resolve(preset="tiny-cpu", overrides=SLURM)
    script = SlurmBackend(python=str(bin_dir / "python")).script("r1", run_dir, cfg)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "SLURM_JOB_ID": "7", "SLURM_NNODES": "1",
           "SLURM_JOB_NODELIST": "node1"}
    result = subprocess.run(["bash", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert not list(tmp_path.rglob("PWNED*"))
    import json

    argv = json.loads((bin_dir / "python.argv").read_text())
    assert argv[argv.index("--run-dir") + 1] == str(run_dir)
    assert argv[argv.index("--config") + 1] == str(run_dir / "config.toml")
    assert "--nnodes=1" in argv and "--rdzv-endpoint=node1:20007" in argv  # the script's own variables expand
    assert json.loads((run_dir / "exit.json").read_text())["exit_code"] == 0
