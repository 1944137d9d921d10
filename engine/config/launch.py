"""Where and how a run is launched: locally with torchrun, on a Beaker cluster or on SLURM."""

from __future__ import annotations

import re
from typing import Any, Dict, List, Literal, Optional

from pydantic import Field, field_validator, model_validator

from ..hardware import BY_NAME
from .base import Config, path_kind
from .notify import NotifyConfig
from .slurm import SlurmConfig

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# What launch.debug sets (see LaunchConfig.debug_env).
# TORCH_DISTRIBUTED_DEBUG is INFO, not DETAIL: DETAIL wraps every process group in a checking
# wrapper that crashes gloo (rank 0 dies with SIGSEGV at the first collective, torch 2.13), and
# the engine always has gloo groups: the whole group on CPU, the host-side bookkeeping group on GPU.
DEBUG_ENV = {"CUDA_LAUNCH_BLOCKING": "1", "NCCL_DEBUG": "INFO", "TORCH_DISTRIBUTED_DEBUG": "INFO"}
# The Beaker job's own variables (resolved config, git commit, rendezvous port) use this prefix.
RESERVED_ENV_PREFIX = "OLMO_TUI_"


class MountConfig(Config):
    """A shared filesystem mounted into the Beaker job."""

    kind: Literal["weka", "nfs"] = Field("weka", description="weka: a Weka bucket. nfs: an NFS host path.")
    source: str = Field(description="Weka bucket name, or the NFS path on the host.", json_schema_extra=path_kind("job"))
    mount_path: Optional[str] = Field(None, description="Where it appears in the container; unset = /weka/<bucket> or the same path.",
                                      json_schema_extra=path_kind("job"))


class SecretConfig(Config):
    """A Beaker secret exposed as an environment variable. Only names travel; values stay in Beaker."""

    env_var: str = Field(description="Environment variable inside the job.")
    secret: str = Field(description="Name of the secret in the Beaker workspace.")

    @field_validator("env_var")
    @classmethod
    def _env_name(cls, value: str) -> str:
        if not _ENV_NAME.match(value):
            raise ValueError(f"'{value}' is not a valid environment variable name")
        if value.startswith(RESERVED_ENV_PREFIX):
            raise ValueError(f"'{value}': names starting with {RESERVED_ENV_PREFIX} are set by olmo-tui itself")
        return value


class BeakerConfig(Config):
    """Beaker experiment settings (backend = beaker)."""

    workspace: Optional[str] = Field(None, description="Beaker workspace, e.g. ai2/my-team; unset = your default.")
    budget: Optional[str] = Field(None, description="Budget account charged for the job, e.g. ai2/oe-training.")
    clusters: List[str] = Field(default_factory=list, description="Clusters the job may run on, e.g. ai2/jupiter.")
    gpus: int = Field(1, ge=0, description="GPUs per node.")
    nodes: int = Field(1, gt=0, description="Number of nodes (replicas).")
    priority: Literal["low", "normal", "high", "urgent"] = Field("normal", description="Scheduling priority.")
    preemptible: bool = Field(True, description="Allow the job to be preempted (and followed to its replacement).")
    image: str = Field("olmo-tui", description="Image holding CUDA torch and this project (see Dockerfile): "
                       "a Beaker image name (user/name) or a Docker image reference (with image_kind = docker).")
    image_kind: Literal["beaker", "docker"] = Field(
        "beaker", description="beaker: `image` names a Beaker image. docker: `image` is a Docker registry reference.")
    mounts: List[MountConfig] = Field(default_factory=list, description="Weka / NFS mounts.")
    env: Dict[str, str] = Field(default_factory=dict, description="Extra environment variables (not secret).")
    secrets: List[SecretConfig] = Field(default_factory=list, description="Secrets by name, exposed as env vars.")
    shared_memory: str = Field("10GiB", description="Shared memory (/dev/shm) size, e.g. 10GiB.")
    retries: int = Field(0, ge=0, description="Times Beaker retries a failed job.")
    description: Optional[str] = Field(None, description="Experiment description.")
    allow_dirty: bool = Field(False, description="Launch from a git tree with uncommitted changes.")
    git_ref: Optional[str] = Field(None, description="Commit to clone on the node; unset = the current HEAD.")
    code_in_image: bool = Field(False, description="The image already holds the code at the right commit (no clone).")
    run_dir: Optional[str] = Field(
        None, description="Run directory on the node (checkpoints, metrics); unset = /results/run, Beaker's "
        "result dataset. Put it on a Weka mount so a preempted job's replacement resumes from its checkpoints.",
        json_schema_extra=path_kind("job"))

    @field_validator("env")
    @classmethod
    def _env_names(cls, value: Dict[str, str]) -> Dict[str, str]:
        for name in value:
            if not _ENV_NAME.match(name):
                raise ValueError(f"'{name}' is not a valid environment variable name")
            if name.startswith(RESERVED_ENV_PREFIX):
                raise ValueError(f"'{name}': names starting with {RESERVED_ENV_PREFIX} are set by olmo-tui itself")
        return value

    @model_validator(mode="after")
    def _names_unique(self) -> "BeakerConfig":
        taken = set(self.env)
        for secret in self.secrets:
            if secret.env_var in taken:
                raise ValueError(f"environment variable '{secret.env_var}' is set twice (env and secrets)")
            taken.add(secret.env_var)
        return self


class LaunchConfig(Config):
    """Launch settings (used by the app and the headless launcher, not by the training loop)."""

    backend: Literal["local", "beaker", "slurm"] = Field(
        "local", description="local: torchrun on this machine. beaker: a Beaker job. slurm: an sbatch job.")
    nproc_per_node: int = Field(1, gt=0, description="Processes (GPUs) per node for torchrun.")
    accelerator: Optional[str] = Field(
        None, description=f"GPU type for memory and wall-time estimates: {', '.join(BY_NAME)}; unset = CPU."
    )
    debug: bool = Field(False, description="Troubleshooting: CUDA_LAUNCH_BLOCKING=1, NCCL_DEBUG=INFO, "
                        "TORCH_DISTRIBUTED_DEBUG=INFO (not DETAIL: it crashes gloo).")
    beaker: Optional[BeakerConfig] = Field(None, description="Beaker settings (backend = beaker).")
    slurm: Optional[SlurmConfig] = Field(None, description="SLURM settings (backend = slurm).")
    notify: Optional[NotifyConfig] = Field(None, description="Notification hook on the run's end or stall "
                                           "(a command and/or a webhook); unset = none.")

    @model_validator(mode="before")
    @classmethod
    def _beaker_defaults(cls, data: Any) -> Any:
        # `--launch.backend=beaker` alone should work: the Beaker section starts from its defaults.
        # The same for `--launch.backend=slurm`.
        if isinstance(data, dict):
            for name in ("beaker", "slurm"):
                if data.get("backend") == name and data.get(name) is None:
                    data = {**data, name: {}}
        return data

    @field_validator("accelerator")
    @classmethod
    def _known_accelerator(cls, value: Optional[str]) -> Optional[str]:
        if value is not None and value not in BY_NAME:
            raise ValueError(f"unknown accelerator '{value}'; known: {', '.join(BY_NAME)}")
        return value

    @property
    def num_nodes(self) -> int:
        if self.backend == "beaker" and self.beaker:
            return self.beaker.nodes
        if self.backend == "slurm" and self.slurm:
            return self.slurm.nodes
        return 1

    @property
    def world_size(self) -> int:
        if self.backend == "beaker" and self.beaker:
            return self.beaker.nodes * max(self.beaker.gpus, 1)
        if self.backend == "slurm" and self.slurm:  # nproc_per_node ranks on each node
            return self.slurm.nodes * self.nproc_per_node
        return self.nproc_per_node

    def debug_env(self) -> Dict[str, str]:
        """Environment variables the `debug` switch adds to every rank's environment; {} when off.

        CUDA_LAUNCH_BLOCKING=1 makes each kernel launch synchronous, so a CUDA error's traceback
        points at the op that failed (and steps get much slower). NCCL_DEBUG=INFO prints NCCL's
        setup (rings, transports, versions) and its errors. TORCH_DISTRIBUTED_DEBUG=INFO logs the
        process groups' setup and a rank's collectives when it fails; DETAIL (which also checks
        that ranks call matching collectives) is left out: it crashes gloo, which every run of the
        engine uses (see DEBUG_ENV). The local launcher and the Beaker spec both take them from here."""
        if not self.debug:
            return {}
        return dict(DEBUG_ENV)
