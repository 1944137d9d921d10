"""Checkpoint retention across a resume: the newest `keep` plus every `keep_every` milestone,
exactly, and never the checkpoint the resume started from before a newer one is committed."""

from __future__ import annotations

import tiny_run

SAVING = ["--trainer.no_checkpoints=false", "--trainer.callbacks.checkpointer.save_interval=2",
          "--trainer.callbacks.checkpointer.ephemeral_save_interval=null",
          "--trainer.callbacks.checkpointer.keep=2", "--trainer.callbacks.checkpointer.keep_every=4"]


def _steps(run_dir):
    return sorted(int(p.name[4:]) for p in (run_dir / "checkpoints").iterdir())


def test_retention_keeps_the_newest_and_the_milestones_across_a_resume(tmp_path, capsys):
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
