"""The runs screen and the log panel with registry rows and run dirs written by the test (no
processes: ended runs are what a refresh reads from exit.json), driven through Pilot."""

from __future__ import annotations

import json
import time
from pathlib import Path

from olmo_tui.app.app import OlmoTuiApp
from olmo_tui.app.screens.dialogs import ConfirmDialog
from olmo_tui.app.screens.monitor import MonitorScreen
from olmo_tui.app.screens.runs import RunsScreen
from olmo_tui.app.widgets.log_panel import LogPanel
from olmo_tui.app.widgets.throughput import ThroughputPanel
from olmo_tui.core.runs.registry import Registry, RunRecord, new_run_id, runs_root
from pilot_helpers import wait_for


def finished_run(name: str, preset: str, exit_code: int, loss: float, log_lines: list, age_s: float = 0) -> RunRecord:
    run_id = new_run_id(name)
    run_dir = runs_root() / run_id
    run_dir.mkdir(parents=True)
    metrics = [{"step": s, "time": time.time(), "total_steps": 10, "tokens": s * 512, "loss": loss + 10 - s,
                "lr": 1e-3, "tps": 1000.0 + s, "mfu": 12.5, "data_pct": 1.5} for s in range(1, 11)]
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps(m) + "\n" for m in metrics))
    lines = log_lines + ["[metrics] " + json.dumps(m) for m in metrics]
    (run_dir / "stdout.log").write_text("\n".join(lines) + "\n")
    (run_dir / "config.toml").write_text('run_name = "x"\n')
    (run_dir / "exit.json").write_text(json.dumps({"exit_code": exit_code, "ended": time.time()}))
    run = RunRecord(id=run_id, name=name, backend="local", run_dir=str(run_dir), status="running", preset=preset,
                    pid=None, created=time.time() - age_s, argv=["python", "-m", "torch.distributed.run"])
    return Registry().add(run)


async def test_table_refreshes_filters_sorts_and_forgets(isolated_xdg):
    ok = finished_run("alpha", "tiny-cpu", 0, 1.0, ["hello"], age_s=100)
    bad = finished_run("beta", "llama2-271m", 1, 5.0, ["RuntimeError: boom"], age_s=10)
    app = OlmoTuiApp()
    async with app.run_test(size=(150, 36)) as pilot:
        await pilot.pause()
        app.action_show_runs()
        await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen) and len(app.screen.runs) == 2)
        screen = app.screen
        # The look recorded how each run ended.
        await wait_for(pilot, lambda: {r.status for r in screen.runs} == {"succeeded", "failed"})
        assert Registry().get(bad.id).message == "RuntimeError: boom"
        assert [r.id for r in screen.visible_runs()] == [bad.id, ok.id]  # newest first
        screen.sort_column = "Loss"
        screen.show_runs(screen.runs)
        assert [r.id for r in screen.visible_runs()] == [ok.id, bad.id]  # lowest loss first
        await pilot.press("slash", *"llama")
        await wait_for(pilot, lambda: [r.id for r in screen.visible_runs()] == [bad.id])
        await pilot.press("enter", "escape")
        await wait_for(pilot, lambda: len(screen.visible_runs()) == 2)

        # d: forget (asked), then delete files (asked separately).
        screen.select(ok.id)
        await pilot.press("d")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmDialog))
        await pilot.press("y")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmDialog) and "delete" in app.screen.question)
        await pilot.press("y")
        await wait_for(pilot, lambda: Registry().get(ok.id) is None)
        assert not Path(ok.run_dir).exists() and Path(bad.run_dir).exists()


async def test_monitor_log_filter_jump_and_panels(isolated_xdg):
    log = [f"line {i}" for i in range(300)]
    log[120] = "W1126 warning: something odd"
    log[250] = "ValueError: bad thing"
    run = finished_run("gamma", "tiny-cpu", 1, 2.0, log)
    app = OlmoTuiApp()
    async with app.run_test(size=(150, 40)) as pilot:
        await pilot.pause()
        await app.push_screen(MonitorScreen(Registry().get(run.id)))
        monitor = app.screen
        panel = monitor.query_one(LogPanel)
        await wait_for(pilot, lambda: panel.total_lines == 310)
        await wait_for(pilot, lambda: monitor.run.status == "failed")
        throughput = monitor.query_one(ThroughputPanel)
        await wait_for(pilot, lambda: throughput.latest.get("step") == 10)
        throughput.redraw()
        assert "loss  2.0000" in str(monitor.query_one("#tp-loss-label").render())
        assert "12.5%" in str(monitor.query_one("#tp-mfu-label").render())
        assert "data loading 1.5%" in str(monitor.query_one("#tp-extra").render())
        header = str(monitor.query_one("#run-header").render())
        assert "exit code 1" in header and "ValueError: bad thing" in header

        rlog = panel.log_widget
        await pilot.press("e")
        assert rlog.lines[rlog.marked].startswith("W1126")
        await pilot.press("e")
        assert rlog.lines[rlog.marked] == "ValueError: bad thing"
        await pilot.press("E")
        assert rlog.lines[rlog.marked].startswith("W1126")
        assert not panel.following

        await pilot.press("slash", *"line 2")
        await wait_for(pilot, lambda: panel.term == "line 2")
        assert all("line 2" in line for line in rlog.lines) and len(rlog.lines) == 110  # 2, 20-29, 200-299 but 250
        from rich.text import Text

        styled = rlog.highlighter(Text("see line 2 here"))
        assert any(span.style == "reverse" for span in styled.spans)
        await pilot.press("enter", "escape")
        await wait_for(pilot, lambda: panel.term == "" and len(rlog.lines) == 310)
        await pilot.press("f")
        assert panel.following


async def test_log_panel_memory_is_bounded(isolated_xdg):
    run = finished_run("delta", "tiny-cpu", 0, 1.0, [f"l{i}" for i in range(5000)])
    app = OlmoTuiApp()
    async with app.run_test(size=(120, 30)) as pilot:
        await pilot.pause()
        monitor = MonitorScreen(Registry().get(run.id))
        await app.push_screen(monitor)
        panel = monitor.query_one(LogPanel)
        panel.max_lines = 1000
        panel.lines = type(panel.lines)(panel.lines, maxlen=1000)
        panel.log_widget.max_lines = 1000
        await wait_for(pilot, lambda: panel.total_lines == 5010)
        assert len(panel.lines) == 1000 and panel.log_widget.line_count == 1000
        assert panel.log_widget.lines[-1].startswith("[metrics] ")
