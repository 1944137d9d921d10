"""Starting a sweep from the editor: ctrl+g opens the dialog over the edited config, the preview
lists the variants (or the one line saying why not), ctrl+l queues them in the registry and
starts the worker. The runs are cancelled at once (the queue, not the training, is under test)."""

from __future__ import annotations


from olmo_tui.app.app import OlmoTuiApp
from olmo_tui.app.screens.runs import RunsScreen
from olmo_tui.app.screens.sweep_dialog import SweepDialog
from olmo_tui.core.runs.registry import Registry
from olmo_tui.core.launch.run_manager import cancel_run, run_config
from pilot_helpers import open_editor, quiet_terminal, type_into, wait_for  # noqa: F401 (fixture)


async def test_sweep_from_the_editor(isolated_xdg):
    try:
        await drive_the_dialog()
        runs = Registry().of_sweep("from-editor")
        assert [r.name for r in runs] == ["tiny-cpu-init_seed3", "tiny-cpu-init_seed4"]
        configs = [run_config(r) for r in runs]
        assert [c.init_seed for c in configs] == [3, 4]
        assert all(c.data_loader.seed == 9 for c in configs)
    finally:
        stop_the_sweep("from-editor")
    assert all(r.terminal for r in Registry().of_sweep("from-editor"))


def stop_the_sweep(name: str) -> None:
    """Whatever happened above: no run of this test may outlive it (queued ones first, so the
    worker starts none of them while the running one stops)."""
    registry = Registry()
    for run in sorted(registry.of_sweep(name), key=lambda r: not r.waiting_in_queue):
        cancel_run(registry.get(run.id), grace_s=5, wait_s=60)


async def drive_the_dialog() -> None:
    app = OlmoTuiApp()
    async with app.run_test(size=(120, 40)) as pilot:
        editor = await open_editor(pilot, "tiny-cpu")
        await type_into(pilot, editor, "data_loader.seed", "9")  # the edited config is the base
        await pilot.press("ctrl+g")
        await wait_for(pilot, lambda: isinstance(app.screen, SweepDialog))
        dialog = app.screen
        grid = dialog.query_one("#sweep-grid")
        grid.value = "init_seed=3,4; train_module.optim.lr=1e-3,nope"
        await wait_for(pilot, lambda: dialog.problem and "variant 2" in dialog.problem)
        await pilot.press("ctrl+l")  # refused: nothing queued
        assert isinstance(app.screen, SweepDialog) and Registry().all() == []

        grid.value = "init_seed=3,4"
        dialog.query_one("#sweep-name").value = "from-editor"
        await wait_for(pilot, lambda: len(dialog.variants) == 2 and dialog.problem is None)
        preview = str(dialog.query_one("#sweep-variants").render())
        assert "2 runs, at most 1 at once" in preview and "tiny-cpu-init_seed4" in preview
        await pilot.press("ctrl+l")
        await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen) and len(Registry().of_sweep("from-editor")) == 2)
        # Let the runs screen finish mounting (and show the queue) before the app closes: closing
        # mid-mount races the header's title watcher.
        await wait_for(pilot, lambda: any(r.sweep == "from-editor" for r in app.screen.runs))
        await pilot.pause(0.2)
