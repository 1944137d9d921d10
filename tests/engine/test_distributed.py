"""Data and tensor parallelism on CPU (gloo, 2 real processes): each reproduces the
single-process losses and gradient norms, and checkpoints reshard across world sizes.

Tolerance: every run is fp32. Parallel runs add the same numbers in a different order
(reduce-scatter / all-reduce of gradients, row-wise TP matmuls split over ranks), which moves
each result by ~1 ulp (6e-8 relative); measured over these 4 steps the losses differ by at most
6e-7 and the gradient norms by 1.3e-5 relative. We allow 1e-5 on losses and 1e-4 on norms:
about 15x / 8x the measured drift, and still far below any real bug (a wrong loss scale or a
missed all-reduce changes the loss by > 1e-3 after one step).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.distributed as dist
from torch.distributed.tensor import DTensor

from engine.checkpoint import Checkpointer, latest_checkpoint, load_model_and_optim
from engine.config import load_experiment
from engine.testing import run_distributed_test
from engine.train_module.train_module import TrainModule

SEQ, VOCAB, N = 32, 128, 8
LOSS_RTOL, NORM_RTOL = 1e-5, 1e-4


def experiment(world=1, dp=None, tp=None, family="llama"):
    tm = {"rank_microbatch_size": 2 * SEQ, "max_sequence_length": SEQ, "max_grad_norm": 1.0,
          "optim": {"lr": 1e-2, "group_overrides": [{"params": ["embeddings.weight"], "weight_decay": 0.0}]},
          "scheduler": {"name": "cosine", "warmup_steps": 2}}
    if dp:
        tm["dp_config"] = dp
    if tp:
        tm["tp_config"] = tp
    return load_experiment({
        "model": {"family": family, "d_model": 64, "n_layers": 2, "n_heads": 4, "n_kv_heads": 2,
                  "vocab_size": VOCAB},
        "dataset": {"kind": "synthetic", "sequence_length": SEQ,
                    "tokenizer": {"vocab_size": VOCAB, "eos_token_id": 0, "pad_token_id": 1}},
        "data_loader": {"global_batch_size": N * SEQ},
        "train_module": tm,
        "trainer": {"max_duration": "10 steps"},
        "launch": {"nproc_per_node": world},
    })


def global_batches(steps, start=0):
    return [torch.randint(0, VOCAB, (N, SEQ), generator=torch.Generator().manual_seed(100 + s))
            for s in range(start, start + steps)]


def train(tm: TrainModule, steps=4, start=0):
    """Losses and grad norms of `steps` steps; each dp rank takes its slice of the global batch."""
    out = []
    per = N // tm.dp_world_size
    for ids in global_batches(steps, start):
        loss = tm.train_batch({"input_ids": ids[tm.dp_rank * per:(tm.dp_rank + 1) * per]})["ce_loss"]
        norm = tm.optim_step()["grad_norm"]
        out.append((loss.item(), norm.item()))
    return out


def _parallel_run(kind: str, family: str):
    # (kind, family) pairs are unique except tp, which runs both families
    dp = {"ddp": {"name": "ddp"}, "fsdp": {"name": "fsdp"},
          "hsdp": {"name": "hsdp", "shard_degree": 1}}.get(kind)
    tm = TrainModule(experiment(world=2, dp=dp, tp={"degree": 2} if kind == "tp" else None, family=family))
    layout = {}
    w = tm.model.blocks["0"].mlp.w1.weight
    if isinstance(w, DTensor):
        layout = {"mesh": tuple(w.device_mesh.shape), "placements": [repr(p) for p in w.placements],
                  "local_rows": w.to_local().shape[0]}
    return {"losses": train(tm), "layout": layout, "dp": (tm.dp_rank, tm.dp_world_size)}


CASES = [
    ("ddp", "llama", {}),  # plain replicas: parameters stay ordinary tensors
    ("fsdp", "olmo2", {"mesh": (2,), "placements": ["Shard(dim=0)"], "local_rows": 128}),
    ("hsdp", "llama", {"mesh": (2, 1), "placements": ["Replicate()", "Shard(dim=0)"], "local_rows": 256}),
    ("tp", "llama", {"mesh": (2,), "placements": ["Shard(dim=0)"], "local_rows": 128}),
    ("tp", "olmo2", {"mesh": (2,), "placements": ["Shard(dim=0)"], "local_rows": 128}),  # QK-norm over TP
]


def _all_parallel_runs():
    # One pair of processes runs every mode in turn: starting processes is the slow part here.
    return {(kind, family): _parallel_run(kind, family) for kind, family, _ in CASES}


@pytest.fixture(scope="module")
def parallel_results():
    return run_distributed_test(_all_parallel_runs, world_size=2)


_REFERENCE = {}


def reference(family):
    if family not in _REFERENCE:
        _REFERENCE[family] = train(TrainModule(experiment(family=family)))
    return _REFERENCE[family]


@pytest.mark.parametrize("kind,family,layout", CASES)
def test_parallel_training_reproduces_single_process(kind, family, layout, parallel_results):
    results = [rank_results[(kind, family)] for rank_results in parallel_results]
    assert results[0]["layout"] == layout
    assert [r["dp"] for r in results] == ([(0, 1), (0, 1)] if kind == "tp" else [(0, 2), (1, 2)])
    ref = reference(family)
    for result in results:  # both ranks report the same global loss
        for (ref_loss, ref_norm), (loss, norm) in zip(ref, result["losses"], strict=True):
            assert loss == pytest.approx(ref_loss, rel=LOSS_RTOL)
            assert norm == pytest.approx(ref_norm, rel=NORM_RTOL)
    losses = [loss for loss, _ in ref]
    assert len(set(losses)) == len(losses)  # the steps really differ (the model moved)


# ---- resharding on resume ----------------------------------------------------------------------

def _save_after_two_steps(folder: str, world: int):
    tm = TrainModule(experiment(world=world, dp={"name": "fsdp"} if world > 1 else None))
    train(tm, steps=2)
    ckpt = Checkpointer(Path(folder), rank=tm.dp_rank, world_size=world)
    ckpt.save(tm.step, tm.state_dict(), {"step": tm.step})
    return train(tm, steps=2, start=2)  # the uninterrupted continuation


def _resume_and_continue(folder: str, world: int):
    tm = TrainModule(experiment(world=world, dp={"name": "fsdp"} if world > 1 else None))
    state = tm.state_dict()
    load_model_and_optim(latest_checkpoint(Path(folder)), state)
    tm.load_state_dict(state)
    assert tm.step == 2
    return train(tm, steps=2, start=2)


def _assert_same(a, b):
    for (la, na), (lb, nb) in zip(a, b, strict=True):
        assert lb == pytest.approx(la, rel=LOSS_RTOL)
        assert nb == pytest.approx(na, rel=NORM_RTOL)


def test_checkpoint_from_two_ranks_resumes_on_one(tmp_path):
    continued = run_distributed_test(_save_after_two_steps, world_size=2, args=(str(tmp_path), 2))[0]
    assert not dist.is_initialized()
    _assert_same(continued, _resume_and_continue(str(tmp_path), 1))


def test_checkpoint_from_one_rank_resumes_on_two(tmp_path):
    continued = _save_after_two_steps(str(tmp_path), 1)
    resumed = run_distributed_test(_resume_and_continue, world_size=2, args=(str(tmp_path), 2))
    for rank_result in resumed:
        _assert_same(continued, rank_result)
