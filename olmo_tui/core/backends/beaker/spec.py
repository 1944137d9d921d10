"""ExperimentConfig (+ git state) -> a beaker-py BeakerExperimentSpec.

The job runs one fixed bash script (NODE_SCRIPT). Nothing the user typed is pasted into it:
every value reaches the node as an environment variable of the spec (OLMO_TUI_*), and the
node-dependent ones (replica count and rank, GPUs, the leader's host name) are BEAKER_*
variables that Beaker sets on each node, expanded there by bash, never on this machine.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Dict, List, Optional

from engine.atomic import write_json_atomic
from engine.config import BeakerConfig, ConfigError, ExperimentConfig, to_toml

from .git_state import GitState

if TYPE_CHECKING:
    from beaker.types import BeakerExperimentSpec

RESULT_PATH = "/results"
DEFAULT_RUN_DIR = "/results/run"
CODE_DIR_IN_IMAGE = "/opt/olmo-tui"  # where the Dockerfile puts the project
SYNC_START_TIMEOUT = "90m"  # replicas wait this long for each other before the job fails
NODE_ARGV0 = "olmo-tui-node"  # $0 of the script: bash -c SCRIPT NAME [engine args...]

# Runs on every node. `set -u` makes a missing variable fail loudly instead of expanding to "".
NODE_SCRIPT = r"""set -euo pipefail
say() { printf '[olmo-tui] %s\n' "$*"; }
if [ -n "${OLMO_TUI_GIT_COMMIT:-}" ]; then
  src="$(mktemp -d)/src"
  say "cloning $OLMO_TUI_GIT_REMOTE at $OLMO_TUI_GIT_COMMIT"
  git clone --quiet "$OLMO_TUI_GIT_REMOTE" "$src"
  git -C "$src" checkout --quiet --detach "$OLMO_TUI_GIT_COMMIT"
else
  src="$OLMO_TUI_CODE_DIR"
fi
cd "$src"
export PYTHONPATH="$src${PYTHONPATH:+:$PYTHONPATH}"
config="$(mktemp -d)/config.toml"
printf '%s' "$OLMO_TUI_CONFIG_B64" | base64 -d > "$config"
mkdir -p "$OLMO_TUI_RUN_DIR"
nnodes="${BEAKER_REPLICA_COUNT:-1}"
node_rank="${BEAKER_REPLICA_RANK:-0}"
nproc="${BEAKER_ASSIGNED_GPU_COUNT:-0}"
if [ "$nproc" -lt 1 ]; then nproc=1; fi
leader="${BEAKER_LEADER_REPLICA_HOSTNAME:-127.0.0.1}"
say "node $node_rank of $nnodes, $nproc processes, rendezvous at $leader:$OLMO_TUI_RDZV_PORT"
exec python -m torch.distributed.run --nnodes="$nnodes" --node-rank="$node_rank" \
  --nproc-per-node="$nproc" --rdzv-backend=static --rdzv-endpoint="$leader:$OLMO_TUI_RDZV_PORT" \
  --rdzv-id="$OLMO_TUI_RUN_ID" -m engine "$OLMO_TUI_RUN_NAME" --config "$config" \
  --run-dir "$OLMO_TUI_RUN_DIR" "$@"
"""


@dataclass(frozen=True)
class BuiltSpec:
    """The spec plus what the app shows and stores about it."""

    spec: "BeakerExperimentSpec"
    name: str  # experiment name
    workspace: Optional[str]
    command: List[str]

    def to_json(self) -> dict:
        return self.spec.to_json()

    def dumps(self) -> str:
        return json.dumps(self.spec.to_json(), indent=2)


def beaker_settings(cfg: ExperimentConfig) -> BeakerConfig:
    return cfg.launch.beaker or BeakerConfig()


def experiment_name(run_id: str) -> str:
    """Beaker names allow letters, digits, '.', '-', '_' and may not start with '-'."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", run_id).strip("-") or "run"
    return name[:100]


def rendezvous_port(run_id: str) -> int:
    """Nodes share the host network, so two runs on one node must not collide on a port:
    derive it from the run id (29000-29999)."""
    return 29000 + int(hashlib.sha256(run_id.encode()).hexdigest(), 16) % 1000


def job_env(cfg: ExperimentConfig, run_id: str, git: Optional[GitState]) -> Dict[str, str]:
    """Every plain (non-secret) variable of the job, ours first, then the user's."""
    bk = beaker_settings(cfg)
    env = {
        "OLMO_TUI_RUN_ID": run_id,
        "OLMO_TUI_RUN_NAME": cfg.run_name,
        "OLMO_TUI_RUN_DIR": bk.run_dir or DEFAULT_RUN_DIR,
        "OLMO_TUI_RDZV_PORT": str(rendezvous_port(run_id)),
        # The resolved config travels with the job (secrets are never in it: only their names).
        "OLMO_TUI_CONFIG_B64": base64.b64encode(to_toml(cfg).encode()).decode(),
    }
    if bk.code_in_image or git is None:
        env["OLMO_TUI_CODE_DIR"] = CODE_DIR_IN_IMAGE
    else:
        env["OLMO_TUI_GIT_REMOTE"] = git.remote
        env["OLMO_TUI_GIT_COMMIT"] = git.commit
    env["PYTHONUNBUFFERED"] = "1"  # log lines reach Beaker's stream as they are printed
    if bk.nodes > 1:
        env["NUM_NODES"] = str(bk.nodes)
    env.update(cfg.launch.debug_env())
    env.update(bk.env)  # the user's own variables win over the defaults above (OLMO_TUI_* are refused)
    return env


def mount_paths(bk: BeakerConfig) -> List[str]:
    return [m.mount_path or (f"/weka/{m.source}" if m.kind == "weka" else m.source) for m in bk.mounts]


def spec_warnings(cfg: ExperimentConfig) -> List[str]:
    """Settings that work but probably not as meant (shown before launching)."""
    bk = beaker_settings(cfg)
    run_dir = bk.run_dir or DEFAULT_RUN_DIR
    shared = any(run_dir == path or run_dir.startswith(path.rstrip("/") + "/") for path in mount_paths(bk))
    warnings: List[str] = []
    if not shared and bk.nodes > 1:
        warnings.append(f"launch.beaker.run_dir ({run_dir}) is not on a Weka/NFS mount: with {bk.nodes} nodes each "
                        "node writes its own copy, so checkpoints need a shared mount (--launch.beaker.run_dir=/weka/...)")
    elif not shared and bk.preemptible:
        warnings.append(f"launch.beaker.run_dir ({run_dir}) is not on a Weka/NFS mount: if the job is preempted, "
                        "its replacement starts again from step 0")
    return warnings


def node_command(extra_args: Optional[List[str]] = None) -> List[str]:
    return ["bash", "-c", NODE_SCRIPT, NODE_ARGV0, *(extra_args or [])]


def build_spec(cfg: ExperimentConfig, run_id: str, git: Optional[GitState]) -> BuiltSpec:
    """The complete experiment spec. `git` is None when the code is baked into the image."""
    import warnings

    from beaker.types import (
        BeakerConstraints,
        BeakerEnvVar,
        BeakerExperimentSpec,
        BeakerImageSource,
        BeakerJobPriority,
        BeakerResultSpec,
        BeakerTaskContext,
        BeakerTaskResources,
        BeakerTaskSpec,
    )

    bk = beaker_settings(cfg)
    env_vars = [BeakerEnvVar(name=k, value=v) for k, v in job_env(cfg, run_id, git).items()]
    env_vars += [BeakerEnvVar(name=s.env_var, secret=s.secret) for s in bk.secrets]
    image = BeakerImageSource(beaker=bk.image) if bk.image_kind == "beaker" else BeakerImageSource(docker=bk.image)
    with warnings.catch_warnings():
        # beaker-py marks `preemptible` deprecated in favour of min_runtime/auto_resume, but the
        # service still takes it and it is the one field that says exactly what the user chose.
        warnings.simplefilter("ignore", DeprecationWarning)
        context = BeakerTaskContext(priority=BeakerJobPriority[bk.priority], preemptible=bk.preemptible)
    command = node_command()
    task = BeakerTaskSpec(
        name="train",
        image=image,
        context=context,
        result=BeakerResultSpec(path=RESULT_PATH),
        constraints=BeakerConstraints(cluster=list(bk.clusters)) if bk.clusters else None,
        command=command,
        env_vars=env_vars,
        resources=BeakerTaskResources(gpu_count=bk.gpus, shared_memory=bk.shared_memory),
    )
    for mount, path in zip(bk.mounts, mount_paths(bk)):
        if mount.kind == "weka":
            task = task.with_dataset(path, weka=mount.source)
        else:
            task = task.with_dataset(path, host_path=mount.source)
    if bk.nodes > 1:
        # One replica per node; Beaker picks a leader whose host name every replica gets as
        # BEAKER_LEADER_REPLICA_HOSTNAME (the static rendezvous), starts them together, and a
        # failure or preemption of one replica stops (and requeues) them all.
        task.replicas = bk.nodes
        task.leader_selection = True
        task.host_networking = True
        task.propagate_failure = True
        task.propagate_preemption = True
        task.synchronized_start_timeout = _nanoseconds(SYNC_START_TIMEOUT)
    spec = BeakerExperimentSpec(
        description=bk.description or f"olmo-tui {run_id}: {cfg.run_name}",
        tasks=[task],
        budget=bk.budget,
    )
    if bk.retries:
        spec = spec.with_retries(bk.retries)
    return BuiltSpec(spec=spec, name=experiment_name(run_id), workspace=bk.workspace, command=command)


def _nanoseconds(text: str) -> int:
    from beaker.common import to_nanoseconds

    return to_nanoseconds(text)


def command_for_display(built: BuiltSpec) -> str:
    """The job's command as one copy-pasteable shell line (the script quoted as one argument)."""
    import shlex

    return shlex.join(built.command)


def write_spec(path: str, spec: dict) -> None:
    """Whole or nothing: a temp file beside the target, renamed into place."""
    target = Path(path)
    try:
        write_json_atomic(target, spec)
    except OSError as exc:
        raise ConfigError.one("--save-spec", f"cannot write {path}: {exc.strerror or exc}") from None
