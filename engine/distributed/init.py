"""Set-up and tear-down of torch.distributed: nccl for CUDA tensors, gloo for CPU tensors,
plus a separate CPU gloo group for bookkeeping (cancel checks, metric reduction) so those
small host-side collectives never queue behind NCCL kernels."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Optional

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    rank: int
    world_size: int
    local_rank: int
    device: torch.device
    backend: str

    @property
    def is_main(self) -> bool:
        return self.rank == 0


_CPU_GROUP: Optional[dist.ProcessGroup] = None


def default_device(local_rank: int = 0) -> torch.device:
    return torch.device("cuda", local_rank) if torch.cuda.is_available() else torch.device("cpu")


def init_distributed(device: Optional[torch.device] = None, timeout_s: float = 1800) -> DistInfo:
    """Join (or, in a plain process, create a 1-rank) process group. Idempotent.

    Under torchrun the RANK / WORLD_SIZE / LOCAL_RANK / MASTER_* variables say where to meet.
    A plain process gets a 1-rank group on a free local port, so FSDP's mixed precision and
    DCP checkpoints work the same with one process as with many.
    """
    global _CPU_GROUP
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    device = device or default_device(local_rank)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        backend = "cpu:gloo,cuda:nccl" if device.type == "cuda" else "gloo"
        kwargs = {"device_id": device} if device.type == "cuda" else {}
        if "RANK" not in os.environ:
            # A plain process: meet ourselves through a store on a local port the OS hands out
            # (bound at once: a port probed free and bound later can be taken in between).
            # Passed explicitly rather than through os.environ, so nothing leaks into later
            # subprocesses of the caller (an in-process run followed by a torchrun child would
            # inherit RANK/MASTER_PORT).
            store = dist.TCPStore("127.0.0.1", 0, 1, is_master=True, timeout=timedelta(seconds=timeout_s))
            kwargs.update(store=store, rank=0, world_size=1)
        dist.init_process_group(backend=backend, timeout=timedelta(seconds=timeout_s), **kwargs)
    if _CPU_GROUP is None:
        _CPU_GROUP = dist.new_group(backend="gloo") if device.type == "cuda" else dist.group.WORLD
    return DistInfo(dist.get_rank(), dist.get_world_size(), local_rank, device, dist.get_backend())


def cpu_group() -> Optional[dist.ProcessGroup]:
    """The gloo group for host-side bookkeeping (None when not distributed)."""
    return _CPU_GROUP if dist.is_initialized() else None


def teardown_distributed() -> None:
    global _CPU_GROUP
    if dist.is_initialized():
        dist.destroy_process_group()
    _CPU_GROUP = None


def exit_process(code: int) -> None:
    """End a process that used torch.distributed: flush, then `os._exit(code)`.

    Interpreter finalization is skipped on purpose. A process group can outlive
    `destroy_process_group` (FSDP states and device meshes still reference it), and its gloo
    worker thread may free the last reference to a finished collective's tensors while the
    interpreter finalizes; taking the GIL then ends the thread inside a noexcept destructor and
    libstdc++ aborts the whole process (SIGABRT after a clean run, seen on 2-rank CPU runs).
    Nothing of ours needs atexit handlers; stdio and logging are flushed here first.
    """
    import logging
    import sys

    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # closed or broken pipe: nothing more can be written
            pass
    os._exit(code)


def world_size() -> int:
    return dist.get_world_size() if dist.is_initialized() else 1


def rank() -> int:
    return dist.get_rank() if dist.is_initialized() else 0
