"""Helpers for tests that need several real processes (gloo on CPU, nccl on GPU)."""

from __future__ import annotations

import os
import pickle
import tempfile
import traceback
from typing import Any, Callable, List, Sequence

import torch.multiprocessing as mp


def _worker(rank: int, fn: Callable, world_size: int, backend: str, port: int, out_dir: str, args: Sequence) -> None:
    import torch
    import torch.distributed as dist

    from engine.distributed import init as dist_init

    # Every rank joins the store the parent hosts (TORCHELASTIC_USE_AGENT_STORE: as torchrun's
    # workers join its agent's), instead of rank 0 starting one.
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE=str(world_size), LOCAL_RANK=str(rank), LOCAL_WORLD_SIZE=str(world_size),
                      TORCHELASTIC_USE_AGENT_STORE="True")
    torch.set_num_threads(1)  # ranks share the machine's cores
    result: Any
    try:
        device = torch.device("cuda", rank) if backend == "nccl" else torch.device("cpu")
        dist_init.init_distributed(device)
        result = ("ok", fn(*args))
    except BaseException as exc:  # report the failure to the parent with its traceback
        result = ("error", f"rank {rank}: {type(exc).__name__}: {exc}\n{traceback.format_exc()}")
    finally:
        try:
            if dist.is_initialized():
                dist_init.teardown_distributed()
        except Exception:
            pass
    with open(os.path.join(out_dir, f"rank{rank}.pkl"), "wb") as f:
        pickle.dump(result, f)
    dist_init.exit_process(0)  # the parent reads the outcome from the file, not the exit code


def run_distributed_test(fn: Callable, world_size: int = 2, backend: str = "gloo", args: Sequence = (),
                         start_method: str = "spawn") -> List[Any]:
    """Run `fn(*args)` in `world_size` fresh processes joined in a process group.

    `fn` must be importable (module level). Returns each rank's return value (rank order);
    raises AssertionError with the rank's traceback if any rank failed.
    """
    from torch.distributed import TCPStore

    # The rendezvous store listens here, on a port the OS hands out, for the whole run. A port
    # probed free and bound later by rank 0 could be taken by another process in between (the
    # ranks' start-up: seconds on a loaded machine).
    store = TCPStore("127.0.0.1", 0, world_size, is_master=True, wait_for_workers=False)
    with tempfile.TemporaryDirectory() as out_dir:
        mp.start_processes(_worker, args=(fn, world_size, backend, store.port, out_dir, tuple(args)),
                           nprocs=world_size, join=True, start_method=start_method)
        results = []
        for rank in range(world_size):
            with open(os.path.join(out_dir, f"rank{rank}.pkl"), "rb") as f:
                status, value = pickle.load(f)
            if status != "ok":
                raise AssertionError(value)
            results.append(value)
        return results
