"""GPU checks of the engine-speed features (skipped without CUDA): the device prefetcher hands
out the loader's batches on the GPU in order, and a few float8 steps track the bf16 losses
(also skipped without torchao or a float8-capable GPU). The full-size figures are in
docs/BENCHMARKS.md ("Engine speed")."""

from __future__ import annotations

import importlib.util

import pytest
import torch

from engine.data.device_prefetch import DevicePrefetcher

from test_distributed_gpu import SEQ, VOCAB, losses


@pytest.mark.gpu
def test_prefetcher_hands_out_device_batches_in_order_with_their_extras():
    source = [({"input_ids": torch.full((2, 8), k, dtype=torch.long)}, {"k": k}) for k in range(5)]
    got = list(DevicePrefetcher(iter(source), torch.device("cuda")))
    assert [extra["k"] for _, extra in got] == list(range(5))
    for (batch, extra), (original, _) in zip(got, source, strict=True):
        assert batch["input_ids"].device.type == "cuda"
        assert torch.equal(batch["input_ids"].cpu(), original["input_ids"])


def _float8_ready() -> bool:
    return (torch.cuda.is_available() and torch.cuda.get_device_capability() >= (8, 9)
            and importlib.util.find_spec("torchao") is not None)


@pytest.mark.gpu
@pytest.mark.parametrize("mode", ["tensorwise", "rowwise"])
def test_float8_steps_track_bf16(mode):
    if not _float8_ready():
        pytest.skip("needs torchao and a GPU of compute capability 8.9+")
    from engine.config import load_experiment
    from engine.train_module.train_module import TrainModule

    def experiment(float8):
        return load_experiment({
            "model": {"family": "olmo2", "qk_norm": True, "d_model": 256, "n_layers": 2, "n_heads": 4,
                      "vocab_size": VOCAB},
            "dataset": {"kind": "synthetic", "sequence_length": SEQ,
                        "tokenizer": {"vocab_size": VOCAB, "eos_token_id": 0, "pad_token_id": 1}},
            "data_loader": {"global_batch_size": 8 * SEQ},
            "train_module": {"rank_microbatch_size": 4 * SEQ, "max_sequence_length": SEQ, "max_grad_norm": 1.0,
                             "optim": {"lr": 3e-3}, "scheduler": {"name": "constant"},
                             "autocast_dtype": "bfloat16", "float8": float8},
        })

    bf16 = losses(TrainModule(experiment("off"), device=torch.device("cuda")), steps=5)
    fp8 = losses(TrainModule(experiment(mode), device=torch.device("cuda")), steps=5)
    assert fp8 == pytest.approx(bf16, rel=2e-2)
