"""The editor's launch of a config that names a hook (launch.notify, here from a user preset):
the real app (Pilot), the real sweep worker and engine; the hook is called when the run ends."""

from __future__ import annotations

import json
import sys
import time

from textual.widgets import Switch

from olmo_tui.app.app import OlmoTuiApp
from olmo_tui.app.screens.monitor import MonitorScreen
from olmo_tui.app.screens.runs import LaunchDialog
from olmo_tui.core.runs.registry import Registry

from pilot_helpers import open_editor, wait_for

PRESET = """
extends = "tiny-cpu"
[trainer]
max_duration = {{ value = 2, unit = "steps" }}
[trainer.callbacks.lm_evaluator]
enabled = false
[launch.notify]
command = {command}
events = ["succeeded", "failed"]
"""


async def test_editor_launch_with_a_preset_hook_calls_it(isolated_xdg, tmp_path):
    events = tmp_path / "events.jsonl"
    command = [sys.executable, "-c", "import sys; open(sys.argv[1], 'a').write(sys.stdin.read() + chr(10))",
               str(events)]
    folder = isolated_xdg / "xdg_config_home" / "olmo-tui" / "presets"
    folder.mkdir(parents=True)
    (folder / "tiny-hooked.toml").write_text(PRESET.format(command=json.dumps(command)))
    app = OlmoTuiApp()
    async with app.run_test(size=(120, 36)) as pilot:
        editor = await open_editor(pilot, "tiny-hooked")
        assert editor.config.launch.notify.command == command
        await editor.form.focus_field("launch.notify.webhook_env")  # the section is in the form, switched on
        await pilot.pause()
        assert editor.form.toggles["launch.notify"].query_one(Switch).value is True
        assert "launch.notify.events" in editor.form.rows
        await pilot.press("ctrl+l")
        await wait_for(pilot, lambda: isinstance(app.screen, LaunchDialog), 5)
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, MonitorScreen), 30)
        run_id = app.screen.run.id
        # Leave only once the monitor has mounted its header: closing the app mid-mount makes
        # Textual's Header look for a title widget that is already gone (NoMatches).
        await wait_for(pilot, lambda: bool(app.screen.query("HeaderTitle")), 10)
        await pilot.pause()
    run = Registry().get(run_id)
    assert run.sweep and run.preset == "tiny-hooked"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not events.exists():
        time.sleep(0.2)
    time.sleep(0.3)  # the line is written in one go; let the writer close
    got = [json.loads(line) for line in events.read_text().splitlines()]
    # sweep_done was not asked for: only the run's own end arrives.
    assert [(e["event"], e["run_id"]) for e in got] == [("succeeded", run_id)]
    assert Registry().get(run_id).status == "succeeded"
