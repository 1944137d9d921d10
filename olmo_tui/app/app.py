"""The Textual app: screens, global keys, the command palette and the two plug points of the
run manager (see docs/ARCHITECTURE.md, "The app"):

- `SCREENS["runs"]`: the run manager's Runs screen (screens/runs.py);
- `OlmoTuiApp.launch(request)`: every Launch goes through it: the run manager starts the run
  in a worker and opens its monitor (screens/monitor.py).
- `OlmoTuiApp.open_editor(cfg, preset_name=None, parent_run_id=None)`: the editor prefilled
  with any resolved config (relaunch opens a run's config.toml this way).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterable, List, Optional

from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.screen import Screen

from engine.config.errors import ConfigError
from engine.config.presets import find_preset, preset_data, preset_description
from olmo_tui.core.launch.command_preview import LaunchRequest

from . import navigation
from .screens.presets import PresetBrowser

if TYPE_CHECKING:
    from engine.config import ExperimentConfig
    from olmo_tui.core.runs.registry import Registry, RunRecord

    from .screens.editor import EditorScreen

# The first screen is the preset browser, drawn from cached preset summaries without the
# pydantic schema (core/catalog.py); the editor and the run manager's screens are imported
# when first opened, and the schema is loaded in a thread once the first screen is up, so
# start-up stays under 0.4 s (benchmarks/app_startup.py).
SCHEMA_WARMUP_DELAY_S = 0.3


def _load_schema() -> None:
    import engine.config.experiment  # noqa: F401  (builds the pydantic models)


def _runs_screen() -> Screen:
    from .screens.runs import RunsScreen

    return RunsScreen()


class OlmoTuiApp(App):
    CSS_PATH = ["styles/app.tcss"]
    TITLE = "olmo-tui"
    # Screens reachable by name.
    SCREENS = {"presets": PresetBrowser, "runs": _runs_screen}
    BINDINGS = [Binding("ctrl+q", "quit", "Quit", show=False, priority=True)]

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.last_launch: Optional[LaunchRequest] = None

    def on_mount(self) -> None:
        self.push_screen("presets")
        # Off the first frame's path, so the editor later opens without the schema's cost.
        self.set_timer(SCHEMA_WARMUP_DELAY_S, lambda: self.run_worker(
            _load_schema, thread=True, group="schema-warmup", exit_on_error=False))

    # ---- navigation (every screen is shown through navigation.show) ----------------------------
    def action_show_runs(self) -> None:
        navigation.show(self, "runs", lambda: self.get_screen("runs"))

    def open_editor(self, cfg: ExperimentConfig, preset_name: Optional[str] = None,
                    parent_run_id: Optional[str] = None) -> "EditorScreen":
        """The editor prefilled with `cfg`; its diff and marks are relative to `cfg`. With a
        preset name, saving keeps that preset's comments; with a parent run id, the launch
        request records it (relaunch). An editor already open closes first."""
        from .screens.editor import EditorScreen

        ref = find_preset(preset_name) if preset_name else None
        description = preset_description(preset_name) if preset_name else ""
        screen = EditorScreen(cfg, ref, parent_run_id, description)  # never reused: built here, once
        navigation.show(self, "editor", lambda: screen)
        return screen

    def open_monitor(self, run: "RunRecord", registry: Optional["Registry"] = None) -> None:
        from .screens.monitor import MonitorScreen

        navigation.show(self, f"monitor-{run.id}", lambda: MonitorScreen(run, registry))

    def open_compare(self, runs: List["RunRecord"]) -> None:
        from .screens.compare import CompareScreen

        navigation.show(self, "compare", lambda: CompareScreen(runs))

    def open_preset(self, name: str) -> None:
        cfg = self._load_preset(name)
        if cfg is not None:
            self.open_editor(cfg, name)

    def _load_preset(self, name: str) -> Optional[ExperimentConfig]:
        from engine.config import load_experiment

        try:
            return load_experiment(preset_data(name))
        except ConfigError as exc:
            self.notify(f"preset {name} is invalid: {exc}", severity="error", timeout=8)
            return None

    def launch_preset(self, name: str) -> None:
        cfg = self._load_preset(name)
        if cfg is not None:
            self.launch(LaunchRequest(cfg, name))

    def preset_saved(self, name: str) -> None:
        browser = self.get_screen("presets")
        if isinstance(browser, PresetBrowser) and browser.is_mounted:
            browser.reload(select=name)

    # ---- launch (plug point of the run manager) ------------------------------------------------
    def launch(self, request: LaunchRequest) -> None:
        """Launch a validated config: a dialog shows the exact commands (enter launches, esc
        goes back), then the run manager starts the run and its monitor opens."""
        from .screens.runs import confirm_launch

        self.last_launch = request
        confirm_launch(self, request)

    # ---- command palette ---------------------------------------------------------------------------
    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        commands = getattr(screen, "palette_commands", None)
        if commands is not None:
            for title, help_text, callback in commands():
                yield SystemCommand(title, help_text, callback)
        yield SystemCommand("Runs", "Show the runs", self.action_show_runs)
        yield from super().get_system_commands(screen)
