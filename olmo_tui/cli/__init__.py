"""The headless front ends: `olmo-tui` and its subcommands (main.py dispatches), the launching
flags, following a run, the backends' flags. Torch-free and textual-free (the app opens only
when `olmo-tui` runs without arguments). The console script is `olmo_tui.cli:entry`."""

from .main import entry  # noqa: F401  (the console script's target, pyproject.toml)
