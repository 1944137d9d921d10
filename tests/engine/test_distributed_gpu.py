"""GPU checks (skipped without CUDA): the compiled bf16 step tracks the eager fp32 step, and
FSDP over NCCL reproduces one GPU. The H100/H200 benchmark runs (docs/BENCHMARKS.md) exercise
the same paths at full size."""

from __future__ import annotations

import pytest
import torch

from engine.testing import run_distributed_test

SEQ, VOCAB = 64, 256


def experiment(world=1, compile_model=False, dp=None, autocast=None):
    from engine.config import load_experiment

    tm = {"rank_microbatch_size": 4 * SEQ, "max_sequence_length": SEQ, "max_grad_norm": 1.0,
          "compile_model": compile_model, "optim": {"lr": 3e-3}, "scheduler": {"name": "constant"}}
    if dp:
        tm["dp_config"] = dp
    if autocast:
        tm["autocast_dtype"] = autocast
    return load_experiment({
        "model": {"family": "olmo2", "qk_norm": True, "d_model": 128, "n_layers": 2, "n_heads": 4, "vocab_size": VOCAB},
        "dataset": {"kind": "synthetic", "sequence_length": SEQ,
                    "tokenizer": {"vocab_size": VOCAB, "eos_token_id": 0, "pad_token_id": 1}},
        "data_loader": {"global_batch_size": 8 * SEQ}, "train_module": tm,
        "launch": {"nproc_per_node": world},
    })


def losses(tm, steps=3):
    out = []
    per = 8 // tm.dp_world_size
    for s in range(steps):
        ids = torch.randint(0, VOCAB, (8, SEQ), generator=torch.Generator().manual_seed(s))
        out.append(tm.train_batch({"input_ids": ids[tm.dp_rank * per:(tm.dp_rank + 1) * per]})["ce_loss"].item())
        tm.optim_step()
    return out


@pytest.mark.gpu
def test_compiled_bf16_step_tracks_eager_fp32():
    from engine.train_module.train_module import TrainModule

    eager = losses(TrainModule(experiment(), device=torch.device("cuda")))
    compiled = losses(TrainModule(experiment(compile_model=True, autocast="bfloat16"), device=torch.device("cuda")))
    # bf16 matmuls: ~3 significant digits; 1% over 3 steps leaves room for rounding, not for bugs.
    assert compiled == pytest.approx(eager, rel=1e-2)


def _fsdp_on_nccl():
    from engine.train_module.train_module import TrainModule

    return losses(TrainModule(experiment(world=2, dp={"name": "fsdp"})))


@pytest.mark.gpu
@pytest.mark.multi_gpu
def test_fsdp_over_nccl_reproduces_one_gpu():
    from engine.train_module.train_module import TrainModule

    single = losses(TrainModule(experiment(), device=torch.device("cuda")))
    ranks = run_distributed_test(_fsdp_on_nccl, world_size=2, backend="nccl")
    for result in ranks:  # TF32 matmuls on both sides: agree to ~1e-4
        assert result == pytest.approx(single, rel=1e-3)
