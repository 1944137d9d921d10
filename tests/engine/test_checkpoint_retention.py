"""Checkpoint retention across a resume: the newest `keep` plus every `keep_every` milestone,
exactly, and never the checkpoint the resume started from before a newer one is committed."""

from __future__ import annotations

import time

import tiny_run
from olmo_tui.core.runs.health import checkpoint_rows

SAVING = ["--trainer.no_checkpoints=false", "--trainer.callbacks.checkpointer.save_interval=2",
          "--trainer.callbacks.checkpointer.ephemeral_save_interval=null",
          "--trainer.callbacks.checkpointer.keep=2", "--trainer.callbacks.checkpointer.keep_every=4"]


def _steps(run_dir):
    return sorted(int(p.name[4:]) for p in (run_dir / "checkpoints").iterdir())


async def test_retention_keeps_the_newest_and_the_milestones_across_a_resume(tmp_path, capsys, isolated_xdg):
    run_dir = tmp_path / "run"
    first = tiny_run.small_config(*SAVING, "--trainer.hard_stop=6 steps", steps=12)
    assert tiny_run.run(first, run_dir) == 0
    assert _steps(run_dir) == [4, 6]  # saved 2, 4, 6: newest two, and 4 (a milestone) among them
    resumed = tiny_run.small_config(*SAVING, steps=12)
    assert tiny_run.run(resumed, run_dir) == 0
    assert f"resuming from {run_dir / 'checkpoints' / 'step6'} (step 6)" in capsys.readouterr().out
    assert tiny_run.metrics(run_dir)[-1]["step"] == 12
    # saved 8, 10, 12: the newest two (10, 12) and the milestones 4 and 8; 6 is gone
    assert _steps(run_dir) == [4, 8, 10, 12]
    rows = checkpoint_rows(run_dir / "checkpoints")  # the monitor's list (K)
    assert [(r.step, r.ephemeral) for r in rows] == [(4, False), (8, False), (10, False), (12, False)]
    assert all(r.size_bytes > 100_000 for r in rows)  # 38K params + AdamW state in float32
    assert all(time.time() - 600 < r.saved <= time.time() for r in rows)

    # The monitor's K: the list, newest first, with the export command of the newest.
    from olmo_tui.app.app import OlmoTuiApp
    from olmo_tui.app.screens.monitor import MonitorScreen
    from olmo_tui.core.runs.registry import Registry, RunRecord

    run = Registry().add(RunRecord(id="ckpt-run", name="ckpt", backend="local", run_dir=str(run_dir),
                                   status="succeeded", preset="tiny-cpu", created=time.time(), exit_code=0))
    app = OlmoTuiApp()
    async with app.run_test(size=(160, 40)) as pilot:
        await pilot.pause()
        await app.push_screen(MonitorScreen(run))
        await pilot.press("K")
        deadline = time.monotonic() + 30
        while app.screen.id != "checkpoint-list" and time.monotonic() < deadline:
            await pilot.pause(0.05)
        text = str(app.screen.query_one(".dialog-text").render())
        listed = [int(line.split()[0]) for line in text.splitlines()[1:] if line.strip()[:1].isdigit()]
        assert listed == [12, 10, 8, 4]
        assert f"olmo-train convert to-hf {run_dir / 'checkpoints' / 'step12'} DEST_DIR" in text
