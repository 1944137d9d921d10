"""`olmo-train RUN_NAME --preset NAME [overrides] [--dry-run]`: the engine's entry point."""

from __future__ import annotations

import sys
from typing import List, Optional, Sequence

from engine.config import EXIT_CONFIG_ERROR, ConfigError


def main(argv: Optional[Sequence[str]] = None) -> int:
    from olmo_tui.cli import print_config, resolve_from_args, run_parser  # shared argument surface

    argv = list(sys.argv[1:] if argv is None else argv)
    parser = run_parser(prog="olmo-train")
    parser.add_argument("run_name", nargs="?", help="name of the run")
    args, extras = parser.parse_known_args(argv)
    try:
        overrides: List[str] = [f"--run_name={args.run_name}"] if args.run_name else []
        cfg = resolve_from_args(args, [*overrides, *extras])
    except ConfigError as exc:
        for line in exc.lines():
            print(line, file=sys.stderr)
        return EXIT_CONFIG_ERROR
    if args.dry_run:
        print_config(cfg, args.json)
        return 0
    print("error: the training loop is not built yet", file=sys.stderr)
    return 1


def entry() -> None:
    sys.exit(main())


if __name__ == "__main__":
    entry()
