"""The compare view with finished runs written into the registry (tests/compare_data.py): marking
three runs in the runs table opens it with three series per plot; the toggles redraw from the
same data; SVG snapshots at 80x24 and 160x48 (fixed ids, metrics and configs, no clock shown).
Update the snapshots after a deliberate change with --snapshot-update and look at the SVGs."""

from __future__ import annotations


from compare_data import STEPS, ids, seed_runs
from olmo_tui.app.app import OlmoTuiApp
from olmo_tui.app.screens.compare import CompareScreen, ComparePlot
from olmo_tui.app.screens.runs import RunsScreen
from olmo_tui.core.runs.registry import Registry
from pilot_helpers import no_blink, quiet_terminal, wait_for  # noqa: F401 (fixture)


async def open_compare(pilot, count: int, try_one_first: bool = False) -> CompareScreen:
    """Through the runs table as a user does it: space on each run (oldest first), then C."""
    app = pilot.app
    await pilot.pause()
    app.action_show_runs()
    await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen) and len(app.screen.runs) >= count)
    runs_screen = app.screen
    chosen = sorted(runs_screen.runs, key=lambda r: r.created)[:count]
    if try_one_first:
        runs_screen.select(chosen[0].id)
        await pilot.press("space", "C")  # one marked run is not a comparison: the table stays
        await pilot.pause()
        assert isinstance(app.screen, RunsScreen)
        await pilot.press("space")  # the same row again: unmarked
        assert runs_screen.marked == []
    for run in chosen:
        runs_screen.select(run.id)
        await pilot.press("space")
    assert runs_screen.marked == [run.id for run in chosen]
    await pilot.press("C")
    await wait_for(pilot, lambda: isinstance(app.screen, CompareScreen) and app.screen.loaded)
    await pilot.pause()
    return app.screen


async def test_three_marked_runs_give_three_series(isolated_xdg):
    runs = seed_runs(4)
    app = OlmoTuiApp()
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_compare(pilot, 3, try_one_first=True)
        assert [run.id for run in screen.runs] == ids(runs[:3])
        plots = list(screen.query(ComparePlot))
        assert [plot.metric for plot in plots] == ["loss", "eval_loss", "tps", "mfu"]
        for plot in plots:
            assert [run_id for run_id, _, _ in plot.series] == ids(runs[:3])
            assert all(xs and len(xs) == len(ys) for _, xs, ys in plot.series)
        loss = screen.query_one("#plot-loss", ComparePlot)
        assert [len(xs) for _, xs, _ in loss.series] == [STEPS] * 3
        assert len(screen.query_one("#plot-eval-loss", ComparePlot).series[0][1]) == STEPS // 10
        # Distinct colours, one per run, kept through every toggle and baseline change.
        colours = dict(screen.colours)
        assert len(set(colours.values())) == 3
        raw = [list(ys) for _, _, ys in loss.series]

        await pilot.press("x")  # tokens on x
        assert loss.series[0][1][:2] == [2048.0, 4096.0]
        await pilot.press("s")  # smoothed: same length, different values, same end region
        smoothed = [ys for _, _, ys in loss.series]
        assert [len(ys) for ys in smoothed] == [len(ys) for ys in raw] and smoothed != raw
        await pilot.press("l")
        assert screen.log_x and "log" in str(screen.query_one("#compare-legend").render())
        await pilot.press("b")  # the next run becomes the baseline: listed and drawn first
        assert screen.baseline == runs[1].id
        assert [run_id for run_id, _, _ in loss.series][0] == runs[1].id
        assert screen.colours == colours
        # The diff panel shows each run's overrides against the baseline (run 2: lr 1e-3).
        assert screen.diffs[runs[0].id] == ["--train_module.optim.lr=0.003"]
        assert screen.diffs[runs[2].id] == ["--init_seed=1"]
        await pilot.press("escape")
        assert isinstance(app.screen, RunsScreen)


def _snapshot(snap_compare, size):
    seed_runs(3)
    Registry().close()

    async def run_before(pilot):
        screen = await open_compare(pilot, 3)
        no_blink(pilot.app)
        assert len(screen.query_one("#plot-loss", ComparePlot).series) == 3
        await pilot.pause()

    return snap_compare(OlmoTuiApp(), terminal_size=size, run_before=run_before)


def test_compare_snapshot_80x24(snap_compare, isolated_xdg):
    assert _snapshot(snap_compare, (80, 24))


def test_compare_snapshot_160x48(snap_compare, isolated_xdg):
    assert _snapshot(snap_compare, (160, 48))
