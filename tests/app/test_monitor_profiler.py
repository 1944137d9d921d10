"""The run monitor's `p` key: where the profiler's traces of the shown run are, taken from the
run's log (works for remote runs too) and from a local run directory."""

from __future__ import annotations

from pathlib import Path

from olmo_tui.app.app import OlmoTuiApp
from olmo_tui.app.screens.monitor import MonitorScreen
from olmo_tui.core.backends.base import RunStatus
from olmo_tui.core.runs.registry import Registry, RunRecord

from engine.train.callbacks.profiler import trace_path, trace_written_line


def finished_run(run_dir: Path, log_lines) -> RunRecord:
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "stdout.log").write_text("".join(line + "\n" for line in log_lines))
    (run_dir / "exit.json").write_text('{"exit_code": 0, "ended": 0}')
    return RunRecord(id="prof-1", name="prof", backend="local", run_dir=str(run_dir),
                     status=RunStatus.SUCCEEDED, exit_code=0)


def messages(app) -> str:
    return "\n".join(str(n.message) for n in app._notifications)


async def test_p_lists_the_traces_from_the_log_and_the_run_dir(tmp_path):
    run_dir = tmp_path / "runs" / "prof"
    remote = "/results/run/profiler/rank1.trace.json"  # printed by another rank on another node
    run = finished_run(run_dir, ["step 10/20 | loss 3.1", trace_written_line(1, 9, 11, Path(remote))])
    local = trace_path(run_dir, 0, 1)
    local.parent.mkdir()
    local.write_text('{"traceEvents": []}')
    registry = Registry()
    registry.add(run)
    app = OlmoTuiApp()
    async with app.run_test() as pilot:
        await app.push_screen(MonitorScreen(run, registry))
        for _ in range(50):  # the log follower is a thread: wait until it has read the file
            await pilot.pause(0.05)
            if app.screen.profiler_traces:
                break
        await pilot.press("p")
        await pilot.pause()
        text = messages(app)
        assert remote in text and str(local) in text and "ui.perfetto.dev" in text


async def test_p_says_how_to_get_a_trace_when_there_is_none(tmp_path):
    run = finished_run(tmp_path / "runs" / "plain", ["step 1/1 | loss 5.0"])
    registry = Registry()
    registry.add(run)
    app = OlmoTuiApp()
    async with app.run_test() as pilot:
        await app.push_screen(MonitorScreen(run, registry))
        await pilot.pause(0.2)
        await pilot.press("p")
        await pilot.pause()
        assert "no profiler trace yet: enable trainer.callbacks.profiler" in messages(app)
