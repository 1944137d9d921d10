"""engine.checkpoint over plain modules and optimizers: atomic commit, retention, async save."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from engine import checkpoint as ckpt
from engine.errors import UserError


def _model_and_optim(seed: int):
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 4))
    optim = torch.optim.AdamW(model.parameters(), lr=1e-2)
    for _ in range(3):  # populate Adam moments so the optimizer state is not trivial
        model(torch.randn(5, 8)).pow(2).mean().backward()
        optim.step()
        optim.zero_grad()
    return model, optim


def _dcp_state(model, optim):
    from torch.distributed.checkpoint.state_dict import get_state_dict

    model_sd, optim_sd = get_state_dict(model, optim)
    return {"model": model_sd, "optim": optim_sd}


def _save(saver, step, model, optim, *, ephemeral=False, extra=None):
    train_state = {"global_step": step, "rng": torch.get_rng_state(), **(extra or {})}
    return saver.save(step, _dcp_state(model, optim), train_state, ephemeral=ephemeral)


def test_round_trip_restores_weights_optimizer_and_train_state(tmp_path):
    model, optim = _model_and_optim(seed=1)
    saver = ckpt.Checkpointer(tmp_path)
    path = _save(saver, 7, model, optim, extra={"data": {"batches_seen": 42}})
    assert path == tmp_path / "step7" and ckpt.is_complete(path)
    assert json.loads((path / ckpt.MARKER).read_text())["step"] == 7

    other, other_optim = _model_and_optim(seed=2)
    state = _dcp_state(other, other_optim)
    ckpt.load_model_and_optim(path, state)
    from torch.distributed.checkpoint.state_dict import set_state_dict

    set_state_dict(other, other_optim, model_state_dict=state["model"], optim_state_dict=state["optim"])
    for a, b in zip(model.state_dict().values(), other.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    for (_, sa), (_, sb) in zip(optim.state_dict()["state"].items(), other_optim.state_dict()["state"].items(), strict=True):
        assert torch.equal(sa["exp_avg_sq"], sb["exp_avg_sq"])
    train_state = ckpt.load_train_state(path, rank=0)
    assert train_state["global_step"] == 7 and train_state["data"] == {"batches_seen": 42}


def test_weights_only_load_reads_just_the_model(tmp_path):
    model, optim = _model_and_optim(seed=1)
    path = _save(ckpt.Checkpointer(tmp_path), 3, model, optim)
    fresh, _ = _model_and_optim(seed=5)
    state = {"model": _dcp_state(fresh, torch.optim.AdamW(fresh.parameters()))["model"]}
    ckpt.load_model_and_optim(ckpt.resolve_load_path(tmp_path), state)
    fresh.load_state_dict(state["model"])
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), fresh.state_dict().values(), strict=True))


def test_retention_keeps_newest_permanent_and_only_the_newest_ephemeral(tmp_path):
    model, optim = _model_and_optim(seed=1)
    saver = ckpt.Checkpointer(tmp_path, keep=2)
    for step, ephemeral in [(5, True), (10, False), (15, True), (20, False), (25, True), (30, True), (40, False)]:
        _save(saver, step, model, optim, ephemeral=ephemeral)
        steps = [info.step for info in ckpt.list_checkpoints(tmp_path)]
        if step == 30:  # 25 replaced by 30; permanent 10 and 20 still there
            assert steps == [10, 20, 30]
    assert [info.step for info in ckpt.list_checkpoints(tmp_path)] == [20, 40]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step20", "step40"]


def test_save_cut_off_mid_write_is_never_taken_for_complete(tmp_path):
    model, optim = _model_and_optim(seed=1)
    saver = ckpt.Checkpointer(tmp_path)
    _save(saver, 10, model, optim)
    # A real failure half-way through writing step 20 (the trainer state cannot be pickled after
    # the staging dir was made): the save removes its partial files itself.
    with pytest.raises(Exception):
        _save(saver, 20, model, optim, extra={"broken": lambda: None})
    assert not (tmp_path / "step20-tmp").exists()
    # A save a crash cut off (nobody left to remove it): shards written, no marker.
    shutil.copytree(tmp_path / "step10", tmp_path / "step20-tmp")
    (tmp_path / "step20-tmp" / ckpt.MARKER).unlink()
    # A step dir whose marker never got written (e.g. copied by hand or cut off elsewhere).
    shutil.copytree(tmp_path / "step10", tmp_path / "step30")
    (tmp_path / "step30" / ckpt.MARKER).unlink()
    # And one with a truncated marker.
    shutil.copytree(tmp_path / "step10", tmp_path / "step40")
    (tmp_path / "step40" / ckpt.MARKER).write_text('{"step": 4')

    assert ckpt.latest_checkpoint(tmp_path) == tmp_path / "step10"
    assert ckpt.resolve_load_path(tmp_path) == tmp_path / "step10"
    saver.remove_stale_staging()
    assert not (tmp_path / "step20-tmp").exists()


def test_async_save_commits_only_at_finalize(tmp_path):
    model, optim = _model_and_optim(seed=1)
    saver = ckpt.Checkpointer(tmp_path, async_save=True)
    assert _save(saver, 4, model, optim) is None
    assert saver.pending_step == 4
    assert ckpt.latest_checkpoint(tmp_path) is None  # written in the background, not committed
    assert saver.finalize() == tmp_path / "step4"
    assert ckpt.latest_checkpoint(tmp_path) == tmp_path / "step4"
    # the next save commits a pending one first
    _save(saver, 8, model, optim)
    _save(saver, 12, model, optim)
    assert [i.step for i in ckpt.list_checkpoints(tmp_path)] == [4, 8]
    saver.finalize()
    assert [i.step for i in ckpt.list_checkpoints(tmp_path)] == [4, 8, 12]


def test_resaving_a_step_replaces_it(tmp_path):
    model, optim = _model_and_optim(seed=1)
    saver = ckpt.Checkpointer(tmp_path)
    _save(saver, 6, model, optim, extra={"tag": "first"})
    _save(saver, 6, model, optim, extra={"tag": "second"})
    assert ckpt.load_train_state(tmp_path / "step6", 0)["tag"] == "second"


def test_resolve_load_path_names_the_field_when_nothing_is_there(tmp_path):
    with pytest.raises(UserError, match="trainer.load_path"):
        ckpt.resolve_load_path(tmp_path / "nope")
