"""`olmo-train RUN_NAME [--preset NAME | --config FILE] [overrides] [--run-dir DIR] [--dry-run]`.

Trains in this process (or, under torchrun, in each rank's process); see docs/CONTRACTS.md for
the run directory and the exit codes: 0 finished, 1 training failed, 2 user error found before
training (one line on stderr, nothing left behind), 130 / 143 stopped by SIGINT / SIGTERM after
a final checkpoint. Rerunning the same command resumes from the latest complete checkpoint.
"""

from __future__ import annotations

import sys
from typing import List, Optional, Sequence

from engine.cli_args import print_config, resolve_args, run_parser
from engine.config import EXIT_CONFIG_ERROR, ConfigError
from engine.errors import EXIT_USER_ERROR, UserError


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["prepare"]:  # `olmo-train prepare ...`: tokenize text into token files
        from engine.data.prepare import main_prepare

        return main_prepare(argv[1:])
    if argv[:1] == ["convert"]:  # `olmo-train convert from-hf|to-hf SRC DST` (engine/hf)
        from engine.hf.cli import main_convert

        return main_convert(argv[1:])
    parser = run_parser(prog="olmo-train")
    if not argv:  # training the schema's bare defaults by accident helps nobody
        parser.print_usage(sys.stderr)
        print("error: give a preset (--preset tiny-cpu) or a config file (--config FILE); "
              "`olmo-tui presets` lists presets", file=sys.stderr)
        return EXIT_CONFIG_ERROR
    parser.description = ("Train a language model. RUN_NAME names the run directory; rerunning the "
                          "same command resumes from its latest complete checkpoint.")
    parser.epilog = ("Exit codes: 0 finished, 1 training failed, 2 user error (nothing left behind), "
                     "130/143 stopped by SIGINT/SIGTERM after a final checkpoint.")
    parser.add_argument("run_name", nargs="?", help="name of the run (default: the config's run_name)")
    parser.add_argument("--run-dir", help="run directory (default: <runs root>/RUN_NAME, the runs root "
                        "`olmo-tui runs` lists: $OLMO_TUI_RUNS_DIR, else $XDG_DATA_HOME/olmo-tui/runs)")
    args, extras = parser.parse_known_args(argv)
    try:
        overrides: List[str] = [f"--run_name={args.run_name}"] if args.run_name else []
        _use_run_snapshot(args)
        cfg = resolve_args(args, [*overrides, *extras])
    except ConfigError as exc:
        for line in exc.lines():
            print(line, file=sys.stderr)
        return EXIT_CONFIG_ERROR
    from engine.config.paths import absolute_paths

    # This process never changes its directory, so a relative path already means the same here
    # as in the user's shell; made absolute now, the run's config.toml says so too, and a
    # relaunch or resume of it (from any directory) reads the same files. olmo-tui's launcher does
    # the same before it writes config.toml (olmo_tui/core/launch/preflight.py:launch_paths).
    cfg = absolute_paths(cfg)
    if args.dry_run:
        if cfg.dataset.sources:  # tokens and epochs per source, as stderr narration
            from engine.data.checks import mixture_lines

            for line in mixture_lines(cfg):
                print(f"# {line}", file=sys.stderr)
        print_config(cfg, args.json)
        return 0
    from engine.stop_request import install_early_handlers

    install_early_handlers()  # a SIGUSR1 during start-up is kept for the Trainer
    from engine.run import main_training, resolve_run_dir

    try:
        run_dir = resolve_run_dir(cfg.run_name, args.run_dir)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    return main_training(cfg, run_dir)


def _use_run_snapshot(args) -> None:
    """A run dir that has a snapshot of its extensions (a resume, or a launcher's ranks) runs
    that code (engine/config/extensions/snapshot.py); found before the config is read."""
    if not (args.run_dir or args.run_name):
        return  # the run dir follows from the config's run_name: engine/run.py compares hashes then
    from engine.config.extensions.loader import use_run_snapshot
    from engine.run import resolve_run_dir

    try:
        use_run_snapshot(resolve_run_dir(args.run_name, args.run_dir))
    except UserError:
        pass  # a bad run name: reported below, where the run dir is resolved for the run


def entry() -> None:
    try:
        code = main()
    except KeyboardInterrupt:  # Ctrl-C outside the training loop (imports, data prep)
        code = 130
    if "torch.distributed" in sys.modules and _only_daemon_threads_left():
        # A process that trained: skip interpreter finalization (engine.distributed.init
        # .exit_process says why), so a finished run never ends as SIGABRT.
        from engine.distributed.init import exit_process

        exit_process(code)
    sys.exit(code)


def _only_daemon_threads_left() -> bool:
    import threading

    return all(t.daemon or t is threading.main_thread() for t in threading.enumerate())


if __name__ == "__main__":
    entry()
