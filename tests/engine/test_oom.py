"""Troubleshooting aids: the out-of-memory advice (printed when a run dies of torch.OutOfMemoryError)
and the launch debug switch's environment."""

from __future__ import annotations

import pytest
import torch

import tiny_run
from engine.config import resolve
from engine.config.launch import LaunchConfig
from engine.oom import is_out_of_memory, oom_advice, smaller_microbatch
from engine.train.callback import Callback

CUDA_OOM = ("CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total capacity of 79.11 GiB "
            "of which 1.02 GiB is free.")


class RaiseOutOfMemory(Callback):
    """Raises what the CUDA caching allocator raises, at the start of a chosen step."""

    name = "raise_oom"

    def __init__(self, at_step: int):
        super().__init__()
        self.at_step = at_step

    def pre_step(self, batch) -> None:
        if self.trainer.global_step + 1 == self.at_step:
            raise torch.OutOfMemoryError(CUDA_OOM)


def test_a_run_that_runs_out_of_memory_ends_with_the_advice(tmp_path, monkeypatch, capsys):
    import engine.train.build as build

    real_build_callbacks = build.build_callbacks
    monkeypatch.setattr(build, "build_callbacks", lambda cfg: [*real_build_callbacks(cfg), RaiseOutOfMemory(2)])
    cfg = tiny_run.small_config(steps=4)
    assert tiny_run.run(cfg, tmp_path / "run") == 1  # training failed (docs/CONTRACTS.md)
    err = capsys.readouterr().err
    assert "Traceback" not in err
    block = err.strip().splitlines()
    assert block[0] == block[-1] == "=" * 78  # one block, nothing else on stderr
    assert block[1] == f"Out of GPU memory. {CUDA_OOM}"
    assert "  train_module.rank_microbatch_size = 128 tokens (2 x 64)" in block
    assert "  train_module.ac_config            = off" in block
    assert "  train_module.dp_config            = unset (a single process)" in block
    steps = [line for line in block if line.startswith(("  1. ", "  2. ", "  3. ", "  4. "))]
    assert steps[0].startswith("  1. Reduce the micro-batch: --train_module.rank_microbatch_size=64 ")
    assert steps[1].startswith("  2. Activation checkpointing with a budget:")
    assert steps[2].startswith("  3. Context parallelism: not yet")
    assert steps[3].startswith("  4. More sharding:")


def test_advice_follows_the_current_values():
    cfg = resolve(preset="tiny-cpu")  # micro-batch 1024 = 8 x 128, global 2048, one process
    text = oom_advice(cfg)
    assert "--train_module.rank_microbatch_size=512 (4 sequences instead of 8)" in text
    assert "global batch of 2,048 tokens" in text
    assert "--train_module.compile_model=true --train_module.ac_config.mode=budget" in text
    assert "add GPUs (--launch.nproc_per_node" in text

    tight = resolve(preset="tiny-cpu", overrides=[
        "--train_module.rank_microbatch_size=128", "--train_module.compile_model=true",
        "--train_module.ac_config.mode=budget", "--train_module.ac_config.activation_memory_budget=0.4",
        "--launch.nproc_per_node=2", "--train_module.dp_config.name=ddp", "--data_loader.global_batch_size=2048"])
    text = oom_advice(tight)
    assert "already 1 sequence(s) of 128 tokens per rank" in text
    assert "--train_module.cp_config.degree=2 splits each 128-token sequence over 2 ranks" in text
    assert "(mesh dp2 x tp1 x cp1 x pp1)" in text
    assert "activation_memory_budget=0.2" in text
    assert "train_module.ac_config            = mode=budget, activation_memory_budget=0.4" in text
    assert "--train_module.dp_config.name=fsdp" in text and "param_dtype=bfloat16" in text
    assert "more GPUs than the current 2" in text


def test_smaller_microbatch_keeps_the_global_batch_whole():
    # 3 sequences per rank per step: halving 3 x 128 gives 1 x 128, the largest divisor below half.
    cfg = resolve(preset="tiny-cpu", overrides=["--train_module.rank_microbatch_size=384",
                                               "--data_loader.global_batch_size=384"])
    assert smaller_microbatch(cfg) == 128
    assert smaller_microbatch(resolve(preset="tiny-cpu")) == 512


def test_out_of_memory_is_recognised_through_chained_errors():
    try:
        try:
            raise torch.OutOfMemoryError("CUDA out of memory")
        except torch.OutOfMemoryError as inner:
            raise RuntimeError("while running the step") from inner
    except RuntimeError as outer:
        assert is_out_of_memory(outer)
    assert not is_out_of_memory(RuntimeError("DefaultCPUAllocator: can't allocate memory"))


@pytest.mark.parametrize("debug, expected", [
    (False, {}),
    (True, {"CUDA_LAUNCH_BLOCKING": "1", "NCCL_DEBUG": "INFO", "TORCH_DISTRIBUTED_DEBUG": "INFO"}),  # DETAIL crashes gloo
])
def test_debug_switch_environment(debug, expected):
    launch = LaunchConfig(debug=debug)
    assert launch.debug_env() == expected
    launch.debug_env()["NCCL_DEBUG"] = "WARN" if debug else None  # callers get a copy
    assert launch.debug_env() == expected


def test_both_launchers_set_what_the_debug_switch_promises(tmp_path):
    """The local launcher's recorded env and the Beaker spec's env hold LaunchConfig.debug_env()."""
    from engine.config import resolve
    from olmo_tui.core.backends.beaker import spec

    cfg = resolve("tiny-cpu", overrides=["--launch.debug=true", "--launch.backend=beaker"])
    promised = cfg.launch.debug_env()
    assert promised and set(promised) == {"CUDA_LAUNCH_BLOCKING", "NCCL_DEBUG", "TORCH_DISTRIBUTED_DEBUG"}
    env = spec.job_env(cfg, "run-1", None)
    assert {k: env[k] for k in promised} == promised
    quiet = resolve("tiny-cpu", overrides=["--launch.backend=beaker"])
    assert not set(promised) & set(spec.job_env(quiet, "run-1", None))

def test_advice_offers_tensor_parallelism_only_where_it_applies():
    # qwen3-0.6b ties its embeddings and gemma3-1b has one KV head: TP cannot split them.
    for preset in ("qwen3-0.6b", "gemma3-1b"):
        text = oom_advice(resolve(preset=preset))
        assert "tp_config" not in text and "tensor parallelism does not apply" in text
    assert "--train_module.tp_config.degree=2" in oom_advice(resolve(preset="olmo3-7b"))
