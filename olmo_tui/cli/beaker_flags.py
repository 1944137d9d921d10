"""Beaker shorthands of the headless CLI, matching OLMo-core's launcher:

    olmo-tui --preset NAME --beaker --gpus 2 --nodes 1 --priority normal --not-preemptible \
             --weka BUCKET --debug [--a.b=v overrides]

Each flag is only a shorter spelling of a `launch.*` override (beaker_overrides), so the dotted
form (--launch.beaker.gpus=2) works the same and the config stays the one source of truth.
launch_args.py registers add_beaker_arguments / beaker_overrides; --save-spec writes the spec a
dry run prints or a launch submitted. No beaker-py import here (the CLI must start fast).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import List

from engine.config.errors import ConfigError


PRIORITIES = ("low", "normal", "high", "urgent")


def add_beaker_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("Beaker", "shorthands for launch.beaker.* (see docs/GUIDE.md)")
    group.add_argument("--beaker", action="store_true", help="run on Beaker (launch.backend=beaker)")
    group.add_argument("--gpus", type=int, metavar="N", help="GPUs per node (launch.beaker.gpus)")
    group.add_argument("--nodes", type=int, metavar="N", help="nodes / replicas (launch.beaker.nodes)")
    group.add_argument("--priority", choices=PRIORITIES, help="scheduling priority (launch.beaker.priority)")
    preempt = group.add_mutually_exclusive_group()
    preempt.add_argument("--preemptible", dest="preemptible", action="store_const", const=True,
                         help="allow preemption (launch.beaker.preemptible=true)")
    preempt.add_argument("--not-preemptible", dest="preemptible", action="store_const", const=False,
                         help="launch.beaker.preemptible=false")
    group.add_argument("--weka", action="append", metavar="BUCKET[:PATH]",
                       help="mount a Weka bucket at /weka/BUCKET or PATH (repeatable; replaces launch.beaker.mounts)")
    group.add_argument("--cluster", action="append", metavar="NAME",
                       help="a cluster the job may run on (repeatable; replaces launch.beaker.clusters)")
    group.add_argument("--workspace", metavar="ORG/NAME", help="launch.beaker.workspace")
    group.add_argument("--budget", metavar="ORG/NAME", help="launch.beaker.budget")
    group.add_argument("--image", metavar="IMAGE", help="Beaker image (launch.beaker.image)")
    group.add_argument("--env", action="append", metavar="NAME=VALUE",
                       help="an environment variable of the job, not secret (repeatable)")
    group.add_argument("--env-secret", action="append", metavar="NAME=SECRET",
                       help="expose the Beaker secret SECRET as $NAME (repeatable; replaces launch.beaker.secrets)")
    group.add_argument("--allow-dirty", action="store_true", default=None,
                       help="launch the last commit although the tree has uncommitted changes")
    group.add_argument("--debug", action="store_true", default=None,
                       help="CUDA_LAUNCH_BLOCKING=1, NCCL_DEBUG=INFO, TORCH_DISTRIBUTED_DEBUG=INFO (launch.debug; any backend)")
    group.add_argument("--save-spec", metavar="PATH",
                       help="write the Beaker experiment spec (JSON) to PATH (with --dry-run, or at launch)")


def _pair(text: str, flag: str, field: str) -> tuple:
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise ConfigError.one(field, f"{flag} takes NAME=VALUE, got {text!r}")
    return name, value


def beaker_overrides(args: argparse.Namespace) -> List[str]:
    """The dotted overrides the shorthands stand for (applied before the user's own)."""
    from engine.config.overrides import format_override  # pydantic: only on the launching path

    get = lambda name: getattr(args, name, None)  # noqa: E731  (olmo-train parses without these flags)
    out: List[str] = []
    if get("beaker"):
        out.append("--launch.backend=beaker")
    for flag, field in (("gpus", "gpus"), ("nodes", "nodes"), ("priority", "priority"),
                        ("preemptible", "preemptible"), ("workspace", "workspace"), ("budget", "budget"),
                        ("image", "image")):
        if get(flag) is not None:
            out.append(format_override(f"launch.beaker.{field}", get(flag)))
    if get("weka"):
        mounts = []
        for item in get("weka"):
            bucket, _, path = item.partition(":")
            if not bucket:
                raise ConfigError.one("launch.beaker.mounts", f"--weka takes BUCKET or BUCKET:PATH, got {item!r}")
            mounts.append({"kind": "weka", "source": bucket, **({"mount_path": path} if path else {})})
        out.append(format_override("launch.beaker.mounts", mounts))
    if get("cluster"):
        out.append(format_override("launch.beaker.clusters", list(get("cluster"))))
    for item in get("env") or []:
        name, value = _pair(item, "--env", "launch.beaker.env")
        out.append(format_override(f"launch.beaker.env.{name}", value))
    if get("env_secret"):
        secrets = [dict(zip(("env_var", "secret"), _pair(item, "--env-secret", "launch.beaker.secrets")))
                   for item in get("env_secret")]
        out.append(format_override("launch.beaker.secrets", secrets))
    if get("allow_dirty"):
        out.append("--launch.beaker.allow_dirty=true")
    if get("debug"):
        out.append("--launch.debug=true")
    return out



def save_spec(args: argparse.Namespace, spec: dict) -> None:
    """--save-spec PATH: the spec a dry run printed or a launch submitted (ConfigError when
    PATH cannot be written)."""
    from ..core.backends.beaker.spec import write_spec

    if getattr(args, "save_spec", None):
        write_spec(args.save_spec, spec)


def save_submitted_spec(args: argparse.Namespace, run_dir: str, spec_file: str) -> None:
    """After a launch: the spec the run submitted (its run dir keeps a copy) to --save-spec."""
    if getattr(args, "save_spec", None):
        save_spec(args, json.loads((Path(run_dir) / spec_file).read_text()))
