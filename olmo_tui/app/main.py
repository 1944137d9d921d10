"""`olmo-tui` with no arguments: open the app. Returns the process exit code."""

from __future__ import annotations


def run_app() -> int:
    from .app import OlmoTuiApp

    app = OlmoTuiApp()
    app.run()
    return app.return_code or 0
