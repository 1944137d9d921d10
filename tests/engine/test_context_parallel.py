"""Context parallelism (Ulysses) on CPU: 2 real gloo processes split every sequence of 256 tokens
and train 10 steps; the losses and gradient norms equal one process's (CP=1), with a full causal
model under DDP over the cp ranks and with an OLMo-3 sliding window (64 < 256, so the window
cuts across the two ranks' shards) under FSDP over dp x cp.

Tolerance: fp32 throughout; CP adds the same numbers in another order (the loss and gradients
are sums over the two ranks' tokens), the drift argument and bounds of test_distributed.py.
"""

from __future__ import annotations

import pytest
import torch

from engine.config import load_experiment
from engine.testing import run_distributed_test
from engine.train_module.train_module import TrainModule

from test_distributed import LOSS_RTOL, NORM_RTOL  # noqa: E402

SEQ, VOCAB, N, STEPS = 256, 128, 4, 10
MODELS = {
    "llama": {"family": "llama"},
    "olmo3-window": {"family": "olmo3", "qk_norm": True, "sliding_window": 64, "full_attention_interval": 2},
    "llama-mha": {"family": "llama", "n_kv_heads": 4},  # tp 2 x cp 2 needs 4 KV heads
}


def experiment(model: str, world=1, cp=None, dp=None, tp=None):
    tm = {"rank_microbatch_size": 2 * SEQ, "max_sequence_length": SEQ, "max_grad_norm": 1.0,
          "optim": {"lr": 1e-2}, "scheduler": {"name": "cosine", "warmup_steps": 2}}
    if cp:
        tm["cp_config"] = cp
    if dp:
        tm["dp_config"] = dp
    if tp:
        tm["tp_config"] = tp
    return load_experiment({
        "model": {"d_model": 32, "n_layers": 2, "n_heads": 4, "n_kv_heads": 2, "vocab_size": VOCAB,
                  "mlp_hidden_size": 64, **MODELS[model]},
        "dataset": {"kind": "synthetic", "sequence_length": SEQ,
                    "tokenizer": {"vocab_size": VOCAB, "eos_token_id": 0, "pad_token_id": 1}},
        "data_loader": {"global_batch_size": N * SEQ},
        "train_module": tm,
        "trainer": {"max_duration": f"{STEPS} steps"},
        "launch": {"nproc_per_node": world},
    })


def train(tm: TrainModule):
    """(loss, grad norm) of each step; every cp rank gets the whole batch and keeps its tokens.
    Counting sequences from a random start: learnable, so the loss falls over the 10 steps."""
    out = []
    for step in range(STEPS):
        start = torch.randint(0, VOCAB, (N, 1), generator=torch.Generator().manual_seed(200 + step))
        ids = (start + torch.arange(SEQ)) % VOCAB
        loss = tm.train_batch({"input_ids": ids})["ce_loss"]
        out.append((loss.item(), tm.optim_step()["grad_norm"].item()))
    return out


CASES = [("llama", None), ("olmo3-window", {"name": "fsdp"})]


def _cp_runs():
    results = {}
    for model, dp in CASES:
        tm = TrainModule(experiment(model, world=2, cp={"degree": 2}, dp=dp))
        assert tm.mesh.cp_size == 2 and tm.dp_world_size == 1 and tm.mesh.grad_ranks == 2
        results[model] = train(tm)
    return results


@pytest.fixture(scope="module")
def cp_results():
    return run_distributed_test(_cp_runs, world_size=2)


@pytest.mark.parametrize("model", [model for model, _ in CASES])
def test_cp2_reproduces_cp1(model, cp_results):
    reference = train(TrainModule(experiment(model)))
    for rank_results in cp_results:
        for (ref_loss, ref_norm), (loss, norm) in zip(reference, rank_results[model], strict=True):
            assert loss == pytest.approx(ref_loss, rel=LOSS_RTOL)
            assert norm == pytest.approx(ref_norm, rel=NORM_RTOL)
    losses = [loss for loss, _ in reference]
    assert losses[-1] < losses[0] and len(set(losses)) == len(losses)  # it really trained


def test_zig_zag_shards_cover_the_sequence_once():
    """Rank r holds chunks r and 2cp-1-r; together the ranks hold every position exactly once."""
    from engine.distributed.context_parallel import shard_order

    order = shard_order(16, 4, zig_zag=True).view(4, 4)  # row r: rank r's positions
    assert order[0].tolist() == [0, 1, 14, 15] and order[3].tolist() == [6, 7, 8, 9]
    assert sorted(order.flatten().tolist()) == list(range(16))
    assert shard_order(16, 4, zig_zag=False).tolist() == list(range(16))


def _cp_fsdp_run():
    tm = TrainModule(experiment("olmo3-window", world=4, cp={"degree": 2}, dp={"name": "fsdp"}))
    assert (tm.dp_world_size, tm.mesh.cp_size, tm.mesh.grad_ranks) == (2, 2, 4)
    per = N // 2
    out = []
    for step in range(STEPS):
        start = torch.randint(0, VOCAB, (N, 1), generator=torch.Generator().manual_seed(200 + step))
        ids = ((start + torch.arange(SEQ)) % VOCAB)[tm.dp_rank * per:(tm.dp_rank + 1) * per]
        loss = tm.train_batch({"input_ids": ids})["ce_loss"]
        out.append((loss.item(), tm.optim_step()["grad_norm"].item()))
    return out


@pytest.mark.slow
def test_cp_with_fsdp_on_four_ranks():
    """dp 2 x cp 2: each dp rank reads half the batch, each cp rank half of every sequence."""
    reference = train(TrainModule(experiment("olmo3-window")))
    for rank_results in run_distributed_test(_cp_fsdp_run, world_size=4):
        for (ref_loss, ref_norm), (loss, norm) in zip(reference, rank_results, strict=True):
            assert loss == pytest.approx(ref_loss, rel=LOSS_RTOL)
            assert norm == pytest.approx(ref_norm, rel=NORM_RTOL)


def _cp_tp_run():
    tm = TrainModule(experiment("llama-mha", world=4, cp={"degree": 2}, tp={"degree": 2}, dp={"name": "fsdp"}))
    assert (tm.dp_world_size, tm.mesh.cp_size, tm.mesh.tp_size) == (1, 2, 2)
    return train(tm)


@pytest.mark.slow
def test_cp_with_tp_on_four_ranks():
    """tp 2 x cp 2: each cp rank's attention holds 4 heads / tp 2 / cp 2 = 1 head of every position."""
    reference = train(TrainModule(experiment("llama-mha")))
    for rank_results in run_distributed_test(_cp_tp_run, world_size=4):
        for (ref_loss, ref_norm), (loss, norm) in zip(reference, rank_results, strict=True):
            assert loss == pytest.approx(ref_loss, rel=LOSS_RTOL)
            assert norm == pytest.approx(ref_norm, rel=NORM_RTOL)
