"""Pipeline parallelism on CPU (gloo, 2 real processes): each schedule reproduces one process's
losses and gradient norms (PP=1), and a checkpoint saved at PP=2 resumes at PP=1 with the same
later losses. Tolerances and their argument are test_distributed.py's (fp32, sums reordered).

The tiny model has 4 blocks: 1F1B puts 2 on each rank; interleaved 1F1B and zero-bubble cut
4 stages of 1 block, 2 per rank. 8 sequences per step in micro-batches of 2: 4 micro-batches.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from engine.checkpoint import Checkpointer, latest_checkpoint, load_model_and_optim
from engine.config import load_experiment
from engine.testing import run_distributed_test
from engine.config.parallel import stage_layers
from engine.train_module.pipeline import build_train_module
from engine.train_module.train_module import TrainModule

from test_distributed import LOSS_RTOL, NORM_RTOL  # noqa: E402

SEQ, VOCAB, N = 32, 128, 8
SCHEDULES = ["1F1B", "interleaved_1F1B", "gpipe", "zero_bubble"]


def experiment(world=1, pp=None, dp=None):
    tm = {"rank_microbatch_size": 2 * SEQ, "max_sequence_length": SEQ, "max_grad_norm": 1.0, "z_loss_multiplier": 1e-4,
          "optim": {"lr": 1e-2, "group_overrides": [{"params": ["embeddings.weight"], "weight_decay": 0.0}]},
          "scheduler": {"name": "cosine", "warmup_steps": 2}}
    if pp:
        tm["pp_config"] = pp
    if dp:
        tm["dp_config"] = dp
    return load_experiment({
        "model": {"d_model": 32, "n_layers": 4, "n_heads": 4, "n_kv_heads": 2, "vocab_size": VOCAB,
                  "mlp_hidden_size": 64},
        "dataset": {"kind": "synthetic", "sequence_length": SEQ,
                    "tokenizer": {"vocab_size": VOCAB, "eos_token_id": 0, "pad_token_id": 1}},
        "data_loader": {"global_batch_size": N * SEQ},
        "train_module": tm,
        "trainer": {"max_duration": "10 steps"},
        "launch": {"nproc_per_node": world},
    })


def train(tm: TrainModule, steps=4, start=0):
    """(loss, z-loss, grad norm) per step; each dp rank takes its slice of the global batch."""
    out, per = [], N // tm.dp_world_size
    for step in range(start, start + steps):
        ids = torch.randint(0, VOCAB, (N, SEQ), generator=torch.Generator().manual_seed(300 + step))
        metrics = tm.train_batch({"input_ids": ids[tm.dp_rank * per:(tm.dp_rank + 1) * per]})
        out.append((metrics["ce_loss"].item(), metrics["z_loss"].item(), tm.optim_step()["grad_norm"].item()))
    return out


def evaluate(tm: TrainModule):
    """Eval CE sum and count over 3 sequences: the last micro-batch is short (padded under PP)."""
    ids = torch.randint(0, VOCAB, (3, SEQ), generator=torch.Generator().manual_seed(99))
    return tuple(t.item() for t in tm.eval_batch({"input_ids": ids}))


def _assert_same(reference, result):
    for (ref_loss, ref_z, ref_norm), (loss, z, norm) in zip(reference, result, strict=True):
        assert loss == pytest.approx(ref_loss, rel=LOSS_RTOL)
        assert z == pytest.approx(ref_z, rel=LOSS_RTOL)
        assert norm == pytest.approx(ref_norm, rel=NORM_RTOL)


def _pipeline_runs(folder: str):
    results = {}
    for schedule in SCHEDULES:
        tm = build_train_module(experiment(world=2, pp={"degree": 2, "schedule": schedule}))
        blocks = sorted(int(name) for part in tm.model_parts for name in part.blocks)
        results[schedule] = {"losses": train(tm), "blocks": blocks, "eval": evaluate(tm)}
    # A checkpoint at PP=2 after 2 steps, then the uninterrupted continuation.
    tm = build_train_module(experiment(world=2, pp={"degree": 2, "schedule": "1F1B"}))
    train(tm, steps=2)
    Checkpointer(Path(folder), rank=torch.distributed.get_rank(), world_size=2).save(
        tm.step, tm.state_dict(), {"step": tm.step})
    results["continued"] = train(tm, steps=2, start=2)
    return results


@pytest.fixture(scope="module")
def pp_results(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pp-ckpt")
    return folder, run_distributed_test(_pipeline_runs, world_size=2, args=(str(folder),))


@pytest.fixture(scope="module")
def reference():
    tm = TrainModule(experiment())
    return train(tm, steps=4), evaluate(tm)


@pytest.mark.parametrize("schedule", SCHEDULES)
def test_schedule_reproduces_pp1(schedule, pp_results, reference):
    _, ranks = pp_results
    layouts = {"1F1B": [[0, 1], [2, 3]], "gpipe": [[0, 1], [2, 3]],
               "interleaved_1F1B": [[0, 2], [1, 3]], "zero_bubble": [[0, 2], [1, 3]]}
    assert [rank[schedule]["blocks"] for rank in ranks] == layouts[schedule]
    losses, evaluation = reference
    for rank in ranks:  # both ranks report the global loss (the last stage's, shared)
        _assert_same(losses, rank[schedule]["losses"])
        assert rank[schedule]["eval"] == pytest.approx(evaluation, rel=LOSS_RTOL)
    assert len({loss for loss, _, _ in losses}) == len(losses)  # the steps really differ


def test_checkpoint_from_pp2_resumes_at_pp1(pp_results, reference):
    folder, ranks = pp_results
    tm = TrainModule(experiment())
    state = tm.state_dict()
    load_model_and_optim(latest_checkpoint(folder), state)
    tm.load_state_dict(state)
    assert tm.step == 2
    resumed = train(tm, steps=2, start=2)
    _assert_same(ranks[0]["continued"], resumed)
    _assert_same(reference[0][2:], resumed)


def test_stage_layers_split_evenly_in_order():
    assert stage_layers(7, 3) == [range(0, 3), range(3, 5), range(5, 7)]
    assert [len(r) for r in stage_layers(16, 4)] == [4, 4, 4, 4]


def _pp_fsdp_run():
    tm = build_train_module(experiment(world=4, pp={"degree": 2, "schedule": "interleaved_1F1B"},
                                       dp={"name": "fsdp"}))
    assert tm.dp_world_size == 2
    return train(tm)


@pytest.mark.slow
def test_pp_with_fsdp_on_four_ranks(reference):
    for rank in run_distributed_test(_pp_fsdp_run, world_size=4):
        _assert_same(reference[0], rank)
