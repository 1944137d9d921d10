"""Beaker shorthands of the headless CLI, matching OLMo-core's launcher:

    olmo-tui --preset NAME --beaker --gpus 2 --nodes 1 --priority normal --not-preemptible \
             --weka BUCKET --debug [--a.b=v overrides]

Each flag is only a shorter spelling of a `launch.*` override (beaker_overrides), so the dotted
form (--launch.beaker.gpus=2) works the same and the config stays the one source of truth.
olmo_tui/cli/main.py registers add_beaker_arguments / beaker_overrides and calls beaker_preflight
before a Beaker launch or dry run. No beaker-py import here (the CLI must start fast).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import List, Optional

from engine.config.errors import ConfigError

from ..core import exit_codes
from ..core.backends.base import BackendError

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
                       help="CUDA_LAUNCH_BLOCKING=1, NCCL_DEBUG=INFO, TORCH_DISTRIBUTED_DEBUG=DETAIL (launch.debug)")
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



def beaker_preflight(cfg, args: argparse.Namespace) -> Optional[int]:
    """Before a Beaker launch: check the git tree (exit 2 if dirty), and for --dry-run print the
    exact spec (stdout; JSON) and the node command (stderr), then return the exit code. For a
    real launch return None and let the backend write --save-spec with the submitted spec."""
    import shlex

    from ..core.backends.base import get_backend
    from ..core.runs.registry import new_run_id

    from ..core.backends.beaker.spec import spec_warnings, write_spec

    try:
        backend = get_backend("beaker")
        built = backend.build(new_run_id(cfg.run_name), cfg)
        for warning in spec_warnings(cfg):
            print(f"warning: {warning}", file=sys.stderr)
        if not getattr(args, "dry_run", False):
            backend.save_spec_to = getattr(args, "save_spec", None)
            return None
        spec = built.to_json()
        if getattr(args, "save_spec", None):
            write_spec(args.save_spec, spec)
    except ConfigError as exc:
        for line in exc.lines():
            print(line, file=sys.stderr)
        return exit_codes.USAGE
    except BackendError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exit_codes.LAUNCH
    if getattr(args, "json", False):
        print(json.dumps({"experiment_name": built.name, "workspace": built.workspace,
                          "command": built.command, "spec": spec}, indent=2))
    else:
        print(json.dumps(spec, indent=2))
    print(f"# Beaker experiment {built.name} (the run id is assigned at launch) in workspace "
          f"{built.workspace or '(your default)'}; each node runs:\n{shlex.join(built.command)}", file=sys.stderr)
    return exit_codes.OK
