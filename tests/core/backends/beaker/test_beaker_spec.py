"""The spec builder: what a Beaker job gets, built from the config alone (no server)."""

from __future__ import annotations

import base64
import subprocess

import pytest

from engine.config import ConfigError, resolve

from olmo_tui.core.backends.beaker.git_state import GitState, cloneable_url, read_git_state, require_clean
from olmo_tui.core.backends.beaker.spec import NODE_SCRIPT, build_spec, rendezvous_port, spec_warnings

GIT = GitState("https://github.com/example/olmo-tui.git", "0123456789abcdef0123456789abcdef01234567", False)


def beaker_cfg(*overrides: str):
    return resolve(preset="tiny-cpu", overrides=["--launch.backend=beaker", *overrides])


def env_of(task: dict) -> dict:
    return {e["name"]: e.get("value", ("SECRET", e.get("secret"))) for e in task["envVars"]}


def test_multi_node_spec_has_replicas_leader_and_host_networking():
    cfg = beaker_cfg("--launch.beaker.nodes=2", "--launch.beaker.gpus=1", "--launch.beaker.clusters=[ai2/jupiter, ai2/titan]",
                     "--launch.beaker.budget=ai2/oe-training", "--launch.beaker.priority=high",
                     "--launch.beaker.preemptible=false", "--launch.beaker.retries=2",
                     "--launch.beaker.image=team/olmo-tui-cu128", "--launch.beaker.shared_memory=64GiB")
    spec = build_spec(cfg, "run-1", GIT).to_json()
    task = spec["tasks"][0]
    assert task["replicas"] == 2 and task["leaderSelection"] is True and task["hostNetworking"] is True
    assert task["propagateFailure"] is True and task["propagatePreemption"] is True
    assert task["synchronizedStartTimeout"] == 90 * 60 * 10**9
    assert task["constraints"] == {"cluster": ["ai2/jupiter", "ai2/titan"]}
    assert task["image"] == {"beaker": "team/olmo-tui-cu128"}
    assert task["context"] == {"priority": "high", "preemptible": False}
    assert task["resources"] == {"gpuCount": 1, "sharedMemory": "64GiB"}
    assert spec["budget"] == "ai2/oe-training" and spec["retry"] == {"allowedTaskRetries": 2}
    env = env_of(task)
    assert env["OLMO_TUI_GIT_COMMIT"] == GIT.commit and env["OLMO_TUI_GIT_REMOTE"] == GIT.remote
    assert env["NUM_NODES"] == "2" and env["OLMO_TUI_RDZV_PORT"] == str(rendezvous_port("run-1"))


def test_single_node_spec_has_no_replica_settings_and_docker_image():
    cfg = beaker_cfg("--launch.beaker.image=ghcr.io/me/olmo-tui:latest", "--launch.beaker.image_kind=docker")
    task = build_spec(cfg, "run-1", GIT).to_json()["tasks"][0]
    assert "replicas" not in task and not task.get("leaderSelection") and not task.get("hostNetworking")
    assert task["image"] == {"docker": "ghcr.io/me/olmo-tui:latest"}
    assert "constraints" not in task


def test_command_is_a_fixed_script_with_torchrun_from_beaker_variables():
    a = build_spec(beaker_cfg("--launch.beaker.env={A: '$(rm -rf /)'}"), "run-a", GIT)
    b = build_spec(beaker_cfg("--run_name=other; echo pwned"), "run-b", None)
    assert a.command == b.command == ["bash", "-c", NODE_SCRIPT, "olmo-tui-node"]
    for needed in ("--nnodes=\"$nnodes\"", "--node-rank=\"$node_rank\"", "--nproc-per-node=\"$nproc\"",
                   "--rdzv-backend=static", "$BEAKER_LEADER_REPLICA_HOSTNAME", "$BEAKER_REPLICA_RANK",
                   "$BEAKER_REPLICA_COUNT", "$BEAKER_ASSIGNED_GPU_COUNT"):
        assert needed.strip("$") in NODE_SCRIPT
    # user values travel only as environment values
    assert env_of(a.to_json()["tasks"][0])["A"] == "$(rm -rf /)"
    assert env_of(b.to_json()["tasks"][0])["OLMO_TUI_RUN_NAME"] == "other; echo pwned"


def test_resolved_config_travels_with_the_job_and_round_trips():
    cfg = beaker_cfg("--train_module.optim.lr=0.00123", "--launch.beaker.secrets=[{env_var: HF_TOKEN, secret: my-hf}]")
    env = env_of(build_spec(cfg, "run-1", GIT).to_json()["tasks"][0])
    import tomllib

    from engine.config import load_experiment

    decoded = load_experiment(tomllib.loads(base64.b64decode(env["OLMO_TUI_CONFIG_B64"]).decode()))
    assert decoded == cfg


def test_secrets_by_name_mounts_and_debug():
    cfg = beaker_cfg("--launch.beaker.secrets=[{env_var: HF_TOKEN, secret: my-hf-token}]",
                     "--launch.beaker.mounts=[{source: oe-data}, {kind: nfs, source: /net/nfs/x, mount_path: /data}]",
                     "--launch.debug")
    task = build_spec(cfg, "run-1", GIT).to_json()["tasks"][0]
    assert {"name": "HF_TOKEN", "secret": "my-hf-token"} in task["envVars"]
    assert task["datasets"] == [
        {"source": {"weka": "oe-data"}, "mountPath": "/weka/oe-data"},
        {"source": {"hostPath": "/net/nfs/x"}, "mountPath": "/data"},
    ]
    env = env_of(task)
    assert env["CUDA_LAUNCH_BLOCKING"] == "1" and env["NCCL_DEBUG"] == "INFO"
    assert env["TORCH_DISTRIBUTED_DEBUG"] == "INFO"  # DETAIL crashes gloo


def test_code_in_image_needs_no_git():
    task = build_spec(beaker_cfg("--launch.beaker.code_in_image"), "run-1", None).to_json()["tasks"][0]
    env = env_of(task)
    assert env["OLMO_TUI_CODE_DIR"] == "/opt/olmo-tui" and "OLMO_TUI_GIT_COMMIT" not in env


@pytest.mark.parametrize("override, field", [
    ("--launch.beaker.env={OLMO_TUI_RUN_DIR: /x}", "launch.beaker.env"),
    ("--launch.beaker.env={'1BAD': x}", "launch.beaker.env"),
    ("--launch.beaker.priority=asap", "launch.beaker.priority"),
    ("--launch.beaker.nodes=0", "launch.beaker.nodes"),
])
def test_bad_beaker_fields_name_the_field(override, field):
    with pytest.raises(ConfigError) as err:
        beaker_cfg(override)
    assert any(field in str(issue) for issue in err.value.issues)


def _git(repo, *args):
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)


def test_git_state_reads_commit_and_refuses_a_dirty_tree(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q")
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "--allow-empty", "-m", "x")
    with pytest.raises(ConfigError, match="no git remote"):
        read_git_state(repo)
    _git(repo, "remote", "add", "origin", "git@github.com:example/olmo-tui.git")
    (repo / "f.txt").write_text("a")
    _git(repo, "add", "f.txt")
    state = read_git_state(repo)
    assert state.remote == "https://github.com/example/olmo-tui.git" and len(state.commit) == 40
    assert state.dirty  # staged but not committed
    with pytest.raises(ConfigError) as err:
        require_clean(state, allow_dirty=False)
    assert "launch.beaker.allow_dirty" in str(err.value)
    require_clean(state, allow_dirty=True)
    with pytest.raises(ConfigError, match="launch.beaker.git_ref"):
        read_git_state(repo, "no-such-ref")


def test_cloneable_url():
    assert cloneable_url("git@github.com:a/b.git") == "https://github.com/a/b.git"
    assert cloneable_url("ssh://git@github.com/a/b.git") == "https://github.com/a/b.git"
    assert cloneable_url("https://github.com/a/b.git") == "https://github.com/a/b.git"
    assert cloneable_url("/srv/git/b.git") == "/srv/git/b.git"


def test_warnings_for_a_run_dir_off_the_shared_mounts():
    multi = spec_warnings(beaker_cfg("--launch.beaker.nodes=2", "--launch.beaker.gpus=1"))
    assert len(multi) == 1 and "with 2 nodes" in multi[0]
    assert "from step 0" in spec_warnings(beaker_cfg())[0]
    assert spec_warnings(beaker_cfg("--launch.beaker.preemptible=false")) == []
    on_weka = beaker_cfg("--launch.beaker.nodes=2", "--launch.beaker.gpus=1", "--launch.beaker.mounts=[{source: oe}]",
                         "--launch.beaker.run_dir=/weka/oe/me/run1")
    assert spec_warnings(on_weka) == []


@pytest.mark.parametrize("code, expected", [
    ("CANCELATION_CODE_SYSTEM_PREEMPTION", "preempted"), ("CANCELATION_CODE_NODE_UNAVAILABLE", "preempted"),
    ("CANCELATION_CODE_MANUAL", "cancelled"), ("CANCELATION_CODE_IDLE", "cancelled"),
    ("CANCELATION_CODE_TIMEOUT", "failed"), ("CANCELATION_CODE_SIBLING_TASK_FAILED", "failed"),
])
def test_cancellation_codes_map_to_statuses(code, expected):
    from beaker import beaker_pb2 as pb2

    from olmo_tui.core.backends.beaker.status import job_state

    job = pb2.Job(id="j1", status=pb2.JobStatus(canceled_code=pb2.CancelationCode.Value(code)))
    job.status.finalized.GetCurrentTime()
    job.status.canceled.GetCurrentTime()
    state = job_state(job)
    assert state.status == expected
    if code == "CANCELATION_CODE_TIMEOUT":
        assert state.message == "stopped by Beaker: timeout"
