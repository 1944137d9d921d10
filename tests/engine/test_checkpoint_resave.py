"""Re-saving a step never deletes the last complete checkpoint before its replacement is
committed, and start-up recovery repairs every crash point of that sequence.

The crash points are reproduced as the on-disk states they leave (a real save builds the
directories, then the test arranges them as the crash would have); the recovery is the one the
engine runs at start-up (checkpoint_layout.recover_save_folder, torch-free).
"""

from __future__ import annotations

import os
import shutil

import torch

from engine import checkpoint as ckpt
from engine import checkpoint_layout as layout


def _save(folder, step, value):
    """A real checkpoint of step `step` whose one weight holds `value`; returns the saver."""
    saver = ckpt.Checkpointer(folder)
    saver.save(step, {"model": {"w": torch.full((4,), float(value))}}, {"global_step": step, "value": value})
    return saver


def _weight(path):
    state = {"model": {"w": torch.zeros(4)}}
    ckpt.load_model_and_optim(path, state)
    return float(state["model"]["w"][0])


def test_resave_replaces_the_step_and_leaves_no_aside(tmp_path):
    _save(tmp_path, 5, 1.0)
    _save(tmp_path, 5, 2.0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step5"]
    assert _weight(tmp_path / "step5") == 2.0
    assert ckpt.load_train_state(tmp_path / "step5", 0)["value"] == 2.0


def test_old_checkpoint_is_still_complete_when_the_new_rename_fails(tmp_path, monkeypatch):
    """The commit's second rename (staging -> stepN) fails as a crash there would: the old
    step is not gone, only moved aside, and recovery puts it back."""
    _save(tmp_path, 5, 1.0)
    real_rename = os.rename

    def rename(src, dst):
        if str(src).endswith(layout.TMP_SUFFIX):
            raise OSError("simulated crash before the commit rename")
        return real_rename(src, dst)

    monkeypatch.setattr(os, "rename", rename)
    try:
        _save(tmp_path, 5, 2.0)
    except OSError:
        pass
    monkeypatch.setattr(os, "rename", real_rename)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["step5-replaced", "step5-tmp"]
    # Even before recovery, the old checkpoint is what resume would find.
    assert ckpt.latest_checkpoint(tmp_path) == tmp_path / "step5-replaced"
    # The staging has its marker (written before the rename): recovery commits the new save.
    repairs = layout.recover_save_folder(tmp_path)
    assert repairs and sorted(p.name for p in tmp_path.iterdir()) == ["step5"]
    assert _weight(tmp_path / "step5") == 2.0


def test_crash_after_moving_aside_with_an_unfinished_staging_restores_the_old(tmp_path):
    _save(tmp_path, 5, 1.0)
    _save(tmp_path, 7, 3.0)
    # The state a crash leaves mid re-save of step 7: the old one aside, the new one unmarked.
    os.rename(tmp_path / "step7", tmp_path / "step7-replaced")
    _save(tmp_path / "scratch", 7, 4.0)
    shutil.move(tmp_path / "scratch" / "step7", tmp_path / "step7-tmp")
    shutil.rmtree(tmp_path / "scratch")
    (tmp_path / "step7-tmp" / layout.MARKER).unlink()
    assert [i.step for i in ckpt.list_checkpoints(tmp_path)] == [5, 7]
    layout.recover_save_folder(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step5", "step7"]
    assert _weight(tmp_path / "step7") == 3.0


def test_finished_commit_with_a_leftover_aside_keeps_the_new(tmp_path):
    _save(tmp_path, 5, 1.0)
    shutil.copytree(tmp_path / "step5", tmp_path / "step5-replaced")
    _save(tmp_path / "new", 5, 2.0)
    shutil.rmtree(tmp_path / "step5")
    shutil.move(tmp_path / "new" / "step5", tmp_path / "step5")
    shutil.rmtree(tmp_path / "new")
    layout.recover_save_folder(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step5"]
    assert _weight(tmp_path / "step5") == 2.0


def test_an_unfinished_staging_alone_is_removed(tmp_path):
    _save(tmp_path, 5, 1.0)
    (tmp_path / "step9-tmp" / "train").mkdir(parents=True)
    layout.recover_save_folder(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step5"]
    assert ckpt.Checkpointer(tmp_path).remove_stale_staging() == []  # idempotent
