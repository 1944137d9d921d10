"""TrainModule in one process: the loss definition, micro-batch invariance, label masks,
z-loss, clipping, parameter groups, schedules and state-dict round trips."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from engine.config import SchedulerConfig, load_experiment
from engine.errors import UserError
from engine.scheduler import lr_factor
from engine.train_module.train_module import TrainModule

SEQ, VOCAB = 32, 128


def experiment(**train_module):
    tm = {"rank_microbatch_size": 8 * SEQ, "max_sequence_length": SEQ,
          "optim": {"lr": 1e-2, "group_overrides": [{"params": ["embeddings.weight"], "weight_decay": 0.0}]},
          "scheduler": {"name": "cosine", "warmup_steps": 2}}
    for key, value in train_module.items():
        tm[key] = {**tm.get(key, {}), **value} if isinstance(value, dict) and isinstance(tm.get(key), dict) else value
    return load_experiment({
        "model": {"d_model": 64, "n_layers": 2, "n_heads": 4, "n_kv_heads": 2, "vocab_size": VOCAB},
        "dataset": {"kind": "synthetic", "sequence_length": SEQ,
                    "tokenizer": {"vocab_size": VOCAB, "eos_token_id": 0, "pad_token_id": 1}},
        "data_loader": {"global_batch_size": 8 * SEQ},
        "train_module": tm,
        "trainer": {"max_duration": "20 steps"},
    })


def batch(n=8, seed=0):
    return torch.randint(0, VOCAB, (n, SEQ), generator=torch.Generator().manual_seed(seed))


def test_loss_is_mean_ce_of_next_tokens_over_the_whole_batch():
    tm = TrainModule(experiment())
    ids = batch()
    with torch.no_grad():
        logits = tm.model(ids)
    expected = F.cross_entropy(logits[:, :-1].flatten(0, 1), ids[:, 1:].flatten())
    assert torch.allclose(tm.train_batch({"input_ids": ids})["ce_loss"], expected, rtol=1e-6)


def grads_after(tm, ids):
    tm.zero_grads()
    loss = tm.train_batch({"input_ids": ids})["ce_loss"]
    return loss, {n: p.grad.clone() for n, p in tm.model.named_parameters()}


def test_micro_batch_split_does_not_change_loss_or_gradients():
    ids = batch()
    whole_loss, whole = grads_after(TrainModule(experiment(rank_microbatch_size=8 * SEQ)), ids)
    split_loss, split = grads_after(TrainModule(experiment(rank_microbatch_size=2 * SEQ)), ids)  # 4 x 2
    assert torch.allclose(whole_loss, split_loss, rtol=1e-6)
    for name in whole:  # fp32 sums in a different order: ~1e-7 relative
        assert torch.allclose(whole[name], split[name], rtol=1e-4, atol=1e-7), name


def test_eval_batch_ignores_masked_labels():
    tm = TrainModule(experiment())
    ids = batch(4)
    mask = torch.ones_like(ids, dtype=torch.bool)
    mask[0, 20:] = False  # padding at the end of instance 0
    ce_sum, count = tm.eval_batch({"input_ids": ids, "label_mask": mask})
    with torch.no_grad():
        logits = tm.model(ids)[:, :-1]
    keep = mask[:, 1:]
    expected = F.cross_entropy(logits[keep], ids[:, 1:][keep], reduction="sum")
    assert count.item() == keep.sum().item() == 4 * 31 - 12
    assert torch.allclose(ce_sum, expected, rtol=1e-5)


def test_z_loss_is_reported_and_added_to_the_objective():
    cfg = experiment(z_loss_multiplier=1e-2)
    tm = TrainModule(cfg)
    ids = batch()
    with torch.no_grad():
        lse = tm.model(ids)[:, :-1].logsumexp(-1)
    metrics = tm.train_batch({"input_ids": ids})
    assert torch.allclose(metrics["z_loss"], lse.square().mean(), rtol=1e-5)
    # The gradient includes the z-loss term: differs from a run without it.
    _, without = grads_after(TrainModule(experiment()), ids)
    with_z = {n: p.grad for n, p in tm.model.named_parameters()}
    assert not torch.allclose(with_z["lm_head.weight"], without["lm_head.weight"])


def test_optim_step_reports_grad_norm_and_scheduled_lr():
    tm = TrainModule(experiment(max_grad_norm=1.0))
    tm.train_batch({"input_ids": batch()})
    manual = torch.sqrt(sum(p.grad.pow(2).sum() for p in tm.model.parameters()))
    out = tm.optim_step()
    assert torch.allclose(out["grad_norm"], manual, rtol=1e-5)
    assert out["lr"] == pytest.approx(1e-2 * 0.5)  # warm-up step 1 of 2
    assert all(p.grad is None for p in tm.model.parameters())  # zeroed for the next step
    assert tm.step == 1


def test_param_groups_apply_overrides_by_glob():
    tm = TrainModule(experiment(optim={"group_overrides": [
        {"params": ["embeddings.weight"], "weight_decay": 0.0},
        {"params": ["*norm.weight"], "lr": 1e-4}]}))
    groups = {g["name"]: g for g in tm.optimizer.param_groups}
    emb = dict(tm.model.named_parameters())["embeddings.weight"]
    assert groups["override0"]["params"] == [emb] and groups["override0"]["weight_decay"] == 0.0
    assert len(groups["override1"]["params"]) == 2 * 2 + 1 and groups["override1"]["lr"] == 1e-4
    assert groups["default"]["weight_decay"] == 0.1
    n_params = sum(len(g["params"]) for g in groups.values())
    assert n_params == len(list(tm.model.parameters()))


def test_an_override_matching_nothing_is_a_user_error():
    with pytest.raises(UserError, match="group_overrides\\[0\\].params"):
        TrainModule(experiment(optim={"group_overrides": [{"params": ["embedding.weight"], "weight_decay": 0.0}]}))


def test_two_overrides_matching_one_parameter_name_it_and_both_globs():
    # Before: the first silently won, and the second could then "match no parameter".
    with pytest.raises(UserError) as info:
        TrainModule(experiment(optim={"group_overrides": [
            {"params": ["embeddings.*"], "weight_decay": 0.0}, {"params": ["*norm.weight", "*.weight"], "lr": 1e-4}]}))
    assert str(info.value) == (
        "train_module.optim.group_overrides: parameter 'embeddings.weight' matches both "
        "group_overrides[0].params 'embeddings.*' and group_overrides[1].params '*.weight'; a parameter "
        "belongs to one group: narrow one of the globs")


@pytest.mark.parametrize("name,step,expected", [
    ("constant", 0, 0.25), ("constant", 50, 1.0),
    ("linear", 3, 1.0), ("linear", 99, 0.1), ("linear", 51, 1 - 0.9 * 48 / 96),
    ("cosine", 3, 1.0), ("cosine", 99, 0.1), ("cosine", 51, 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.5))),
    ("wsd", 10, 1.0), ("wsd", 79, 1.0), ("wsd", 90, 1 - 0.9 * 11 / 20), ("wsd", 99, 0.1),
])
def test_schedules(name, step, expected):
    cfg = SchedulerConfig(name=name, warmup_steps=4, final_lr_ratio=0.1, decay_fraction=0.2)
    assert lr_factor(cfg, step, 100) == pytest.approx(expected)


def test_training_reduces_the_loss():
    tm = TrainModule(experiment())
    ids = batch()
    first = tm.train_batch({"input_ids": ids})["ce_loss"].item()
    tm.optim_step()
    for _ in range(15):
        last = tm.train_batch({"input_ids": ids})["ce_loss"].item()
        tm.optim_step()
    assert last < first - 1.0  # memorising one batch: ln(128)=4.85 falls by > 1 nat in 16 steps


def test_state_dict_round_trip_continues_bitwise():
    cfg = experiment()
    a = TrainModule(cfg)
    for seed in range(2):
        a.train_batch({"input_ids": batch(seed=seed)})
        a.optim_step()
    saved = {k: v for k, v in a.state_dict().items()}
    saved = torch.utils._pytree.tree_map(lambda t: t.clone() if isinstance(t, torch.Tensor) else t, saved)
    expected = []
    for seed in (2, 3):
        expected.append(a.train_batch({"input_ids": batch(seed=seed)})["ce_loss"].item())
        a.optim_step()
    b = TrainModule(experiment())
    b.load_state_dict(saved)
    assert b.step == 2
    got = []
    for seed in (2, 3):
        got.append(b.train_batch({"input_ids": batch(seed=seed)})["ce_loss"].item())
        b.optim_step()
    assert got == expected
