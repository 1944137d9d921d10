"""The peer: ai2-olmo-core 3.0.0 training a model of its own zoo on random tokens, timed the way
benchmarks/throughput.py times ours, so benchmarks/compare_peer.py can put the two side by side.

    PYTHONPATH=/tmp/peer python3 benchmarks/peer_olmo_core.py --model olmo2_1B_v2 --seq-len 4096 \
        --micro-batch 4 --global-batch-tokens 131072 --steps 20 [--json-out peer.json]
    torchrun --nproc-per-node 2 benchmarks/peer_olmo_core.py ...       (FSDP over 2 GPUs)

Built only from olmo_core's public configs, in the order of its own training example: model
(meta) -> TransformerTrainModuleConfig.build -> NumpyFSLDatasetConfig / NumpyDataLoaderConfig
-> TrainerConfig.build -> fit(). Its recipe for the comparison: bf16 params, fp32 reduce, FSDP,
torch.compile, AdamW (OLMo-core's default implementation) with no weight decay on the
embeddings, max_grad_norm 1.0, no z-loss, no checkpoints, no evals, its own default callbacks.

Timing: one callback of ours, run last after every step, synchronises the GPU at step `skip`
and at the last step and reads the clock there: tokens/s/device = tokens of steps skip+1..N /
that wall time / world size. Peak memory = torch.cuda.max_memory_allocated() after fit (no
callback that resets it is added). Prints one JSON line; the peer's packages travel as wheels
(docs/BENCHMARKS.md), so this file imports olmo_core only inside main().
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

STARTED = time.perf_counter()  # before torch's import: the first-step time counts the whole process

import numpy as np
import torch


def token_file(folder: Path, n_tokens: int, vocab: int, dtype, seed: int) -> Path:
    """A raw memmap of uniform random ids (olmo_core's numpy token format), written once."""
    path = folder / f"random_{vocab}_{np.dtype(dtype).name}_{n_tokens}_{seed}.npy"
    if path.is_file() and path.stat().st_size == n_tokens * np.dtype(dtype).itemsize:
        return path
    folder.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(f".{os.getpid()}.part")
    ids = np.memmap(partial, dtype=dtype, mode="w+", shape=(n_tokens,))
    rng = np.random.default_rng(seed)
    step = 1 << 24
    for start in range(0, n_tokens, step):
        stop = min(n_tokens, start + step)
        ids[start:stop] = rng.integers(0, vocab, stop - start)
    ids.flush()
    del ids
    os.replace(partial, path)
    return path


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="llama2_271M", help="a TransformerConfig factory, e.g. olmo2_1B_v2")
    p.add_argument("--seq-len", type=int, default=1024)
    p.add_argument("--micro-batch", type=int, default=16, help="sequences per micro-batch per rank")
    p.add_argument("--global-batch-tokens", type=int, default=262144)
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--skip-steps", type=int, default=5)
    p.add_argument("--n-layers", type=int, default=None, help="shrink the model (CPU smoke runs)")
    p.add_argument("--vocab-size", type=int, default=None,
                   help="embedding rows (default: the tokenizer's padded size); ids are drawn below --token-vocab")
    p.add_argument("--token-vocab", type=int, default=None, help="ids in the token file (default: the tokenizer's)")
    p.add_argument("--model-kwargs", default="{}",
                   help="JSON keyword arguments for the factory, to match our preset's shape exactly")
    p.add_argument("--no-compile", action="store_true")
    p.add_argument("--work-dir", default="/tmp/peer_olmo_core")
    p.add_argument("--json-out", default=None)
    args = p.parse_args()

    from olmo_core.config import DType
    from olmo_core.data import NumpyDataLoaderConfig, NumpyFSLDatasetConfig, TokenizerConfig
    from olmo_core.distributed.parallel import DataParallelType
    from olmo_core.distributed.utils import get_rank, get_world_size
    from olmo_core.nn.transformer import TransformerConfig
    from olmo_core.optim import AdamWConfig, CosWithWarmup, OptimGroupOverride
    from olmo_core.train import Duration, TrainerConfig, prepare_training_environment, teardown_training_environment
    from olmo_core.train.callbacks import Callback
    from olmo_core.train.train_module import TransformerDataParallelConfig, TransformerTrainModuleConfig

    gpu = torch.cuda.is_available()
    if not gpu:
        os.environ.setdefault("OLMO_SHARED_FS", "1")
    prepare_training_environment(backend="cpu:gloo,cuda:nccl" if gpu else "gloo")
    world = get_world_size()
    work = Path(args.work_dir)

    tokenizer = TokenizerConfig.dolma2() if args.model.startswith("olmo") else TokenizerConfig.gpt2()
    if args.token_vocab:  # qwen3 / gemma3: olmo_core has no named tokenizer config for them
        tokenizer = TokenizerConfig(vocab_size=args.token_vocab, eos_token_id=0, pad_token_id=0)
    extra = dict(json.loads(args.model_kwargs), **({"n_layers": args.n_layers} if args.n_layers else {}))
    model_cfg = getattr(TransformerConfig, args.model)(
        vocab_size=args.vocab_size or tokenizer.padded_vocab_size(), **extra)
    seq = args.seq_len
    n_tokens = (args.steps + 3) * args.global_batch_tokens + seq
    dataset_cfg = NumpyFSLDatasetConfig(paths=["unused"], sequence_length=seq, tokenizer=tokenizer)
    dtype = dataset_cfg.get_dtype()
    if get_rank() == 0:
        token_file(work / "data", n_tokens, tokenizer.vocab_size, dtype, seed=0)
    if world > 1:
        torch.distributed.barrier()
    data_path = token_file(work / "data", n_tokens, tokenizer.vocab_size, dtype, seed=0)  # exists now
    dataset_cfg = NumpyFSLDatasetConfig(paths=[str(data_path)], sequence_length=seq, tokenizer=tokenizer,
                                        work_dir=str(work / "dataset-work"))

    train_module_cfg = TransformerTrainModuleConfig(
        rank_microbatch_size=args.micro_batch * seq, max_sequence_length=seq,
        optim=AdamWConfig(lr=1e-3, group_overrides=[
            OptimGroupOverride(params=["embeddings.weight"], opts=dict(weight_decay=0.0))]),
        compile_model=gpu and not args.no_compile,
        dp_config=TransformerDataParallelConfig(name=DataParallelType.fsdp, param_dtype=DType.bfloat16,
                                                reduce_dtype=DType.float32),
        max_grad_norm=1.0, scheduler=CosWithWarmup(warmup_steps=100))

    clock: dict = {}
    losses: list = []

    class WindowClock(Callback):
        priority = -100  # after every other callback's post_step

        def post_step(self):
            step = self.trainer.global_step
            # The step's CE loss as the train module recorded it (a device tensor: no sync here).
            loss = self.trainer._metrics.get(step, {}).get("train/CE loss")
            losses.append(loss.detach().clone() if loss is not None else None)
            if step in (1, args.skip_steps, args.steps):
                if gpu:
                    torch.cuda.synchronize()
                clock[step] = time.perf_counter()

    trainer_cfg = TrainerConfig(
        save_folder=str(work / "save"), work_dir=str(work / "work"), save_overwrite=True,
        max_duration=Duration.steps(args.steps), no_checkpoints=True, no_evals=True,
        metrics_collect_interval=5, device=None if gpu else "cpu",
    ).with_callback("window_clock", WindowClock())

    built = time.perf_counter()
    model = model_cfg.build(init_device="meta")
    params = model.num_params
    train_module = train_module_cfg.build(model)
    loader = NumpyDataLoaderConfig(global_batch_size=args.global_batch_tokens, seed=0, num_workers=4).build(
        dataset_cfg.build(), dp_process_group=train_module.dp_process_group)
    trainer = trainer_cfg.build(train_module, loader)
    build_s = time.perf_counter() - built
    if gpu:
        torch.cuda.reset_peak_memory_stats()
    fit_started = time.perf_counter()
    trainer.fit()
    fit_s = time.perf_counter() - fit_started

    window = args.steps - args.skip_steps
    seconds = clock[args.steps] - clock[args.skip_steps]
    result = {
        "engine": "olmo-core", "model": args.model, "params": params, "seq_len": seq,
        "micro_batch": args.micro_batch, "global_batch_tokens": args.global_batch_tokens, "world_size": world,
        "steps": args.steps, "window": [args.skip_steps + 1, args.steps],
        "tps_per_device": round(args.global_batch_tokens * window / seconds / world, 1),
        "step_s": round(seconds / window, 4),
        "peak_mem_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2) if gpu else None,
        "peak_reserved_gib": round(torch.cuda.max_memory_reserved() / 2**30, 2) if gpu else None,
        "build_s": round(build_s, 1), "fit_s": round(fit_s, 1),
        # From the start of fit() to the end of step 1: compilation (and olmo_core's dry-run batch) included.
        "first_step_s": round(clock[1] - fit_started, 1),
        "process_to_first_step_s": round(clock[1] - STARTED, 1),
        "losses": [round(float(x), 4) if x is not None else None for x in losses],
        "device": torch.cuda.get_device_name() if gpu else "cpu", "torch": torch.__version__,
    }
    if get_rank() == 0:
        line = json.dumps(result)
        print(line, flush=True)
        if args.json_out:
            Path(args.json_out).write_text(line + "\n")
    teardown_training_environment()
    return 0


if __name__ == "__main__":
    sys.exit(main())
