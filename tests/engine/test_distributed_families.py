"""The new model families under FSDP and tensor parallelism on CPU (gloo, 2 real processes):
each reproduces the single-process losses and gradient norms of the same tiny model.

The tiny configs keep every feature of their family switched on: OLMo-3's sliding window
(shorter than the sequence, so the window really cuts), Qwen3's per-head QK-norm with a head_dim
apart from d_model / n_heads, Gemma-3's pre + post norms, (1 + w) norms, scaled embeddings,
GELU-tanh MLP, local / global RoPE bases and query_pre_attn_scalar. Tolerances are those of
tests/engine/test_distributed.py (same fp32 reordering argument).
"""

from __future__ import annotations

import pytest
from torch.distributed.tensor import DTensor

from engine.config import load_experiment
from engine.testing import run_distributed_test
from engine.train_module.train_module import TrainModule

from test_distributed import LOSS_RTOL, NORM_RTOL, SEQ, VOCAB, train  # noqa: E402

FAMILIES = {
    "olmo3": {"family": "olmo3", "qk_norm": True, "sliding_window": 12, "full_attention_interval": 2},
    "qwen3": {"family": "qwen3", "qk_norm": True, "head_dim": 24},
    "gemma3": {"family": "gemma3", "qk_norm": True, "head_dim": 24, "sliding_window": 12,
               "full_attention_interval": 2, "rope_theta": 1e6, "rope_local_theta": 1e4,
               "query_pre_attn_scalar": 20},
}


def experiment(family, world=1, dp=None, tp=None):
    tm = {"rank_microbatch_size": 2 * SEQ, "max_sequence_length": SEQ, "max_grad_norm": 1.0,
          "optim": {"lr": 1e-2}, "scheduler": {"name": "cosine", "warmup_steps": 2}}
    if dp:
        tm["dp_config"] = dp
    if tp:
        tm["tp_config"] = tp
    return load_experiment({
        "model": {"d_model": 64, "n_layers": 2, "n_heads": 4, "n_kv_heads": 2, "vocab_size": VOCAB,
                  **FAMILIES[family]},
        "dataset": {"kind": "synthetic", "sequence_length": SEQ,
                    "tokenizer": {"vocab_size": VOCAB, "eos_token_id": 0, "pad_token_id": 1}},
        "data_loader": {"global_batch_size": 8 * SEQ},
        "train_module": tm,
        "trainer": {"max_duration": "10 steps"},
        "launch": {"nproc_per_node": world},
    })


CASES = [(kind, family) for family in FAMILIES for kind in ("fsdp", "tp")]


def _runs():
    out = {}
    for kind, family in CASES:
        cfg = experiment(family, world=2, dp={"name": "fsdp"} if kind == "fsdp" else None,
                         tp={"degree": 2} if kind == "tp" else None)
        tm = TrainModule(cfg)
        w = tm.model.blocks["0"].attention.w_q.weight
        sharded = isinstance(w, DTensor) and w.to_local().shape[0] == w.shape[0] // 2
        out[(kind, family)] = {"losses": train(tm, steps=3), "sharded": sharded}
    return out


@pytest.fixture(scope="module")
def parallel_results():
    return run_distributed_test(_runs, world_size=2)


_REFERENCE = {}


@pytest.mark.parametrize("kind,family", CASES)
def test_family_reproduces_single_process_losses(kind, family, parallel_results):
    if family not in _REFERENCE:
        _REFERENCE[family] = train(TrainModule(experiment(family)), steps=3)
    ref = _REFERENCE[family]
    for rank_results in parallel_results:
        result = rank_results[(kind, family)]
        assert result["sharded"]  # the block weights really are split over the 2 ranks
        assert len(result["losses"]) == len(ref) == 3
        for (ref_loss, ref_norm), (loss, norm) in zip(ref, result["losses"], strict=True):
            assert loss == pytest.approx(ref_loss, rel=LOSS_RTOL)
            assert norm == pytest.approx(ref_norm, rel=NORM_RTOL)
    assert len({loss for loss, _ in ref}) == 3  # the model moved between steps
