"""Bulk relaunch: with runs marked in the runs table, `r` asks once and relaunches each marked
run unchanged as a child run, through the one launch path (real torchrun; the job is the
contract's stand-in, tests/launcher_stub)."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.config import resolve
from olmo_tui.app.app import OlmoTuiApp
from olmo_tui.app.screens.dialogs import ConfirmDialog
from olmo_tui.app.screens.runs import RunsScreen
from olmo_tui.core.launch import launcher
from olmo_tui.core.runs.registry import Registry
from olmo_tui.core.runs.tailing import wait_for as wait_until
from pilot_helpers import wait_for

from stub_backend import stub  # noqa: F401  (the fixture)


@pytest.fixture
def quick(monkeypatch, stub):
    monkeypatch.setenv("STUB_STEPS", "3")


async def test_r_with_two_marked_runs_relaunches_both_unchanged(quick):
    parents = [launcher.launch(resolve(preset="tiny-cpu", overrides=[f"--init_seed={seed}"]), preset="tiny-cpu")
               for seed in (1, 2)]
    other = launcher.launch(resolve(preset="tiny-cpu"), preset="tiny-cpu")
    assert wait_until(lambda: all(Registry().get(r.id).status == "succeeded" or
                                  (Path(r.run_dir) / "engine_exit.json").exists() for r in [*parents, other]), 120)
    app = OlmoTuiApp()
    async with app.run_test(size=(160, 40)) as pilot:
        await pilot.pause()
        app.action_show_runs()
        await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen) and len(app.screen.runs) == 3)
        screen = app.screen
        for run in parents:
            screen.select(run.id)
            await pilot.press("space")
        await pilot.press("r")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmDialog))
        assert "Relaunch 2 marked runs" in app.screen.question
        await pilot.press("y")
        await wait_for(pilot, lambda: len(Registry().all()) == 5, timeout=90)
        assert isinstance(app.screen, RunsScreen)  # no editor, no monitor: the table shows them
    children = [r for r in Registry().all() if r.parent_id]
    assert sorted(r.parent_id for r in children) == sorted(r.id for r in parents)
    for child in children:  # each child runs its own parent's config
        parent_seed = next(p for p in parents if p.id == child.parent_id)
        assert resolve(config_file=str(Path(child.run_dir) / "config.toml")).init_seed == \
            resolve(config_file=str(Path(parent_seed.run_dir) / "config.toml")).init_seed
