"""Stability alerts marked on the monitor's loss plot: ▲ under the column of each alerting
step, the row hidden until the first alert, and the marks move with the plot."""

from __future__ import annotations

from textual.app import App, ComposeResult

from olmo_tui.app.widgets.throughput import ThroughputPanel
from pilot_helpers import wait_for


class PanelApp(App):
    def compose(self) -> ComposeResult:
        yield ThroughputPanel()


def record(step: int, alert: bool = False) -> dict:
    out = {"step": step, "total_steps": 100, "loss": 3.0 + (5.0 if alert else 0.0), "tps": 1000.0}
    if alert:
        out["alerts"] = [{"kind": "loss_spike", "action": "warn", "value": 8.0, "threshold": 4.0,
                          "message": "loss 8.0 over 4.0"}]
    return out


async def test_alerts_are_marked_under_the_loss_plot():
    app = PanelApp()
    async with app.run_test(size=(80, 40)) as pilot:
        panel = app.query_one(ThroughputPanel)
        marks = app.query_one("#tp-loss-marks")
        for step in range(1, 41):
            panel.add(record(step))
        await pilot.pause(0.4)
        assert not marks.display  # no alert: no row
        panel.add(record(41, alert=True))
        for step in range(42, 81):
            panel.add(record(step))
        await wait_for(pilot, lambda: marks.display and "▲" in panel.alert_marks())
        width = app.query_one("#tp-loss").size.width
        row = panel.alert_marks()
        assert len(row) == width and row.count("▲") == 1
        assert row.index("▲") == 40 * width // 80  # the 41st of 80 points
