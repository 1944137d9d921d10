"""SLURM job settings (launch.backend = "slurm"): what goes into the job script's #SBATCH lines.

Every string here ends up in a bash script, so each one is checked to be a single line; the
values that SLURM parses itself (time limit, memory, extra options) are checked against the
forms SLURM accepts, so a typo is a config error naming the field instead of an sbatch failure.
Container options (pyxis/enroot) are not supported yet.
"""

from __future__ import annotations

import re
from typing import List, Optional

from pydantic import Field, field_validator

from .base import Config, path_kind

# SLURM's --time forms: M, M:S, H:M:S, D-H, D-H:M, D-H:M:S (and UNLIMITED / INFINITE).
_TIME = re.compile(r"^(\d+(:\d{1,2}){0,2}|\d+-\d+(:\d{1,2}){0,2}|UNLIMITED|INFINITE)$")
_MEM = re.compile(r"^\d+[KMGT]?$")
_NAME = re.compile(r"^[A-Za-z0-9_.,:@%+=/|&!()\[\]-]+$")  # partition, account, qos, constraint
_OPTION = re.compile(r"^--[a-z][a-z0-9-]*(=[^\n\r]+)?$")
# Options the job script sets itself: a second value would silently win or break following.
RESERVED_OPTIONS = ("job-name", "output", "error", "open-mode", "nodes", "ntasks-per-node", "signal",
                    "requeue", "no-requeue", "chdir", "parsable", "wrap", "array", "partition", "account",
                    "qos", "gpus-per-node", "cpus-per-task", "mem", "time", "constraint", "exclusive")


def _one_line(value: str) -> str:
    if "\n" in value or "\r" in value or "\0" in value:
        raise ValueError("must be a single line")
    return value


class SlurmConfig(Config):
    """SLURM settings (backend = slurm). One srun task per node runs torchrun with
    launch.nproc_per_node processes; ranks meet by a c10d rendezvous on the first node."""

    partition: Optional[str] = Field(None, description="Partition (sbatch --partition); unset = the cluster's default.")
    account: Optional[str] = Field(None, description="Account charged for the job (--account).")
    qos: Optional[str] = Field(None, description="Quality of service (--qos).")
    nodes: int = Field(1, gt=0, description="Number of nodes (--nodes); each runs launch.nproc_per_node ranks.")
    gpus_per_node: int = Field(0, ge=0, description="GPUs requested per node (--gpus-per-node); 0 = none (CPU).")
    cpus_per_task: Optional[int] = Field(None, gt=0, description="CPUs for each node's task (--cpus-per-task); "
                                         "unset = the cluster's default.")
    mem: Optional[str] = Field(None, description="Memory per node (--mem), e.g. 64G or 0 (all of it); unset = "
                               "the cluster's default.")
    time_limit: Optional[str] = Field(None, description="Time limit (--time): minutes, H:M:S or D-H:M:S; unset = "
                                      "the partition's default.")
    constraint: Optional[str] = Field(None, description="Node features required (--constraint), e.g. h100.")
    exclusive: bool = Field(False, description="Whole nodes only (--exclusive).")
    requeue: bool = Field(True, description="Let SLURM requeue the job after preemption or a node failure "
                          "(--requeue); the new attempt resumes from the latest checkpoint.")
    signal_before_limit_s: int = Field(
        120, ge=1, le=65535, description="Seconds before the time limit when SLURM sends SIGUSR1 "
        "(--signal=B:USR1@N): the engine writes a checkpoint and exits cleanly.")
    extra_sbatch: List[str] = Field(default_factory=list, description="More #SBATCH options, each "
                                    "'--name' or '--name=value', e.g. --mail-type=END.")
    setup: List[str] = Field(default_factory=list, description="Shell lines the job script runs before "
                             "srun, e.g. 'module load cuda/12.4' or 'source ~/venv/bin/activate'; the environment "
                             "they set reaches every node's torchrun.")
    python: Optional[str] = Field(None, description="Python on the nodes that has torch and this project; "
                                  "unset = the Python running olmo-tui (it must exist on the nodes).",
                                  json_schema_extra=path_kind("program"))
    shared_paths: List[str] = Field(default_factory=list, description="Folders on a filesystem every node "
                                    "and this machine share (e.g. /weka, /home). The runs folder and "
                                    "trainer.save_folder must lie under one of them.",
                                    json_schema_extra=path_kind())

    @field_validator("partition", "account", "qos", "constraint")
    @classmethod
    def _plain_name(cls, value: Optional[str]) -> Optional[str]:
        if value is not None and not _NAME.match(value):
            raise ValueError(f"'{value}' holds characters SLURM names cannot (spaces, quotes, newlines)")
        return value

    @field_validator("mem")
    @classmethod
    def _memory(cls, value: Optional[str]) -> Optional[str]:
        if value is not None and not _MEM.match(value):
            raise ValueError(f"'{value}' is not a SLURM memory size: a number with an optional K, M, G or T")
        return value

    @field_validator("time_limit")
    @classmethod
    def _time(cls, value: Optional[str]) -> Optional[str]:
        if value is not None and not _TIME.match(value):
            raise ValueError(f"'{value}' is not a SLURM time: minutes, M:S, H:M:S, D-H, D-H:M or D-H:M:S")
        return value

    @field_validator("extra_sbatch")
    @classmethod
    def _options(cls, value: List[str]) -> List[str]:
        for option in value:
            if not _OPTION.match(option):
                raise ValueError(f"'{option}' is not an sbatch option: use --name or --name=value on one line")
            name = option[2:].split("=", 1)[0]
            if name in RESERVED_OPTIONS:
                raise ValueError(f"'--{name}' is set by olmo-tui itself (use the launch.slurm field for it)")
        return value

    @field_validator("setup", "shared_paths")
    @classmethod
    def _lines(cls, value: List[str]) -> List[str]:
        return [_one_line(line) for line in value]

    @field_validator("shared_paths")
    @classmethod
    def _absolute(cls, value: List[str]) -> List[str]:
        for path in value:
            if not path.startswith(("/", "~", "$")):
                raise ValueError(f"'{path}' must be an absolute path")
        return value

    @field_validator("python")
    @classmethod
    def _python(cls, value: Optional[str]) -> Optional[str]:
        return None if value is None else _one_line(value)
