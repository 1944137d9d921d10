"""`--dry-run` and `--check` of the launching commands (`olmo-tui --preset ...`, `relaunch`):
what a launch would run, after the launch's own pre-flight, without launching."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, List

from engine.cli_args import print_config
from engine.config.errors import ConfigError
from engine.errors import without_controls

from ..core import exit_codes
from .launch_args import fail_config

if TYPE_CHECKING:
    from engine.config import ExperimentConfig


def _err(message: str) -> None:
    print(without_controls(message), file=sys.stderr)


def narrate_summary(cfg: ExperimentConfig) -> None:
    from engine.config.parallel import mesh_text

    from ..core.config import describe
    from ..core.config.estimates import memory_estimate
    from ..core.formatting import gib, human_count

    model = cfg.model
    _err(
        f"# {cfg.run_name}: {human_count(model.num_params())} params "
        f"({human_count(model.num_non_embedding_params())} non-embedding"
        + (f", {human_count(model.num_active_params())} active" if model.moe is not None else "") + "), "
        f"{human_count(model.num_flops_per_token(cfg.dataset.sequence_length))} FLOPs/token, "
        f"{cfg.tokens_per_step:,} tokens/step, {describe.gpus(cfg)}, {describe.parallelism(cfg)}"
    )
    memory = f"; memory/rank {gib(memory_estimate(cfg).total)} on the worst rank" if cfg.launch.accelerator else ""
    _err(f"# mesh {mesh_text(cfg)} ({cfg.launch.world_size} rank(s)){memory}")
    if cfg.dataset.sources:  # tokens and epochs per source of a mixture
        from engine.data.checks import mixture_lines

        for line in mixture_lines(cfg):
            _err(f"# {line}")


def dry_run(cfg: ExperimentConfig, args) -> int:
    """Print what a launch would run (the backend's own output: the Beaker spec, the SLURM job
    script; else the resolved config, relative paths made absolute) after the launch's very
    pre-flight, naming each problem it finds as a warning. Exit 0 all the same (a config meant
    for another machine can still be printed); --check exits 2 where a launch would. A path a
    Beaker job could not see is exit 2 either way: there is no config to show."""
    from engine.errors import UserError

    from ..core.backends.base import BackendError, get_backend
    from ..core.launch.preflight import launch_paths
    from ..core.launch.prepare import preflight
    from ..core.runs.registry import new_run_id, runs_root

    try:  # what would run: relative paths made absolute (Beaker refuses them: nothing to show)
        cfg = launch_paths(cfg)
    except UserError as exc:
        _err(f"error: {exc}")
        return exit_codes.USAGE
    problems: List[str] = []
    try:
        checked = preflight(cfg, warn=lambda warning: _err(f"warning: {warning}"))
        cfg, run_id, run_dir = checked.cfg, checked.run_id, checked.run_dir
    except (UserError, ConfigError, BackendError) as exc:
        problems = exc.lines() if isinstance(exc, ConfigError) else [f"error: {exc}"]
        run_id = new_run_id(cfg.run_name)
        run_dir = runs_root() / run_id
    for line in problems:
        _err(line.replace("error:", "warning: a launch would fail:", 1))
    backend = get_backend(cfg.launch.backend)
    try:
        shown = backend.dry_run(cfg, run_id, run_dir, args.json)
    except ConfigError as exc:  # the backend cannot build what it would submit (a dirty tree)
        return fail_config(exc)
    except BackendError as exc:
        _err(f"error: {exc}")
        return exit_codes.LAUNCH
    if shown is None:
        narrate_summary(cfg)
        print_config(cfg, args.json)
    else:
        out, note = shown
        sys.stdout.write(out)
        sys.stdout.flush()
        _err(note)
        if backend.spec_file and getattr(args, "save_spec", None):
            from .beaker_flags import save_spec

            try:
                save_spec(args, json.loads(out)["spec"] if args.json else json.loads(out))
            except ConfigError as exc:
                return fail_config(exc)
    return exit_codes.USAGE if args.check and problems else exit_codes.OK
