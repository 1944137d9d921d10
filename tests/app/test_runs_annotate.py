"""Notes and tags edited in the app round-trip through the registry and `olmo-tui runs`; the
annotate CLI's edits show in the app (the Tags column, the filter, the monitor's details)."""

from __future__ import annotations

import json
import time

from cli_helpers import run_cli

from olmo_tui.app.app import OlmoTuiApp
from olmo_tui.app.screens.dialogs import AnnotateDialog
from olmo_tui.app.screens.runs import RunsScreen
from olmo_tui.core.runs.registry import Registry, RunRecord, runs_root
from pilot_helpers import wait_for


def ended(name: str, index: int) -> RunRecord:
    run_dir = runs_root() / name
    run_dir.mkdir(parents=True)
    return Registry().add(RunRecord(id=name, name=name, backend="local", run_dir=str(run_dir),
                                    status="succeeded", exit_code=0, started=time.time(),
                                    created=time.time() + index))


async def test_notes_and_tags_round_trip_through_app_registry_and_cli(isolated_xdg):
    first, second = ended("note-a", 0), ended("note-b", 1)
    app = OlmoTuiApp()
    async with app.run_test(size=(160, 40)) as pilot:
        await pilot.pause()
        app.action_show_runs()
        await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen) and len(app.screen.runs) == 2)
        screen = app.screen
        assert "Tags" not in screen.columns_shown and "Status" in screen.columns_shown  # no empty Tags column
        screen.select(first.id)
        await pilot.press("n")
        await wait_for(pilot, lambda: isinstance(app.screen, AnnotateDialog))
        app.screen.query_one("#annotate-notes").value = "lr too high? compare with note-b"
        tags = app.screen.query_one("#annotate-tags")
        tags.value = "x" * 65  # too long: refused in the dialog, nothing saved
        tags.focus()
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, AnnotateDialog)
        assert "is not a tag" in str(app.screen.query_one("#annotate-error").render())
        tags.value = "ablation, lr, ablation"
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen))
        await wait_for(pilot, lambda: "Tags" in screen.columns_shown)
        assert Registry().get(first.id).tags == ["ablation", "lr"]
        assert Registry().get(first.id).notes == "lr too high? compare with note-b"

        # the filter matches a tag: only the tagged run stays
        await pilot.press("slash")
        await pilot.press(*"ablation")
        await wait_for(pilot, lambda: [r.id for r in screen.visible_runs()] == [first.id])

    listed = run_cli("runs", "--tag", "ablation", "--json")
    assert listed.returncode == 0, listed.stderr
    assert [r["id"] for r in json.loads(listed.stdout)] == [first.id]

    # the CLI's edit shows in the app: the second run's tag, and its note in the monitor's details
    assert run_cli("annotate", second.id, "--tag", "baseline", "--note", "the reference").returncode == 0
    app = OlmoTuiApp()
    async with app.run_test(size=(160, 40)) as pilot:
        await pilot.pause()
        app.action_show_runs()
        await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen) and len(app.screen.runs) == 2)
        assert {r.id: r.tags for r in app.screen.runs}[second.id] == ["baseline"]
        app.screen.select(second.id)
        await pilot.press("enter")
        await wait_for(pilot, lambda: type(app.screen).__name__ == "MonitorScreen")
        details = app.screen.details_text()
        assert "tags: baseline" in details and "the reference" in details
