"""Batches on the GPU before the step needs them: pinned host memory, copied on a side stream.

`.to(device, non_blocking=True)` from ordinary (pageable) memory is not asynchronous: the host
waits for the copy, so a step's launch stalls behind the GPU. DevicePrefetcher instead pins
each CPU batch and starts its copy on a dedicated CUDA stream one batch ahead; handing a batch
out makes the compute stream wait for that copy (a GPU-side wait, no host sync) and marks the
tensors as used there, so the caching allocator cannot recycle them early.

It iterates (batch, extra) pairs and yields them back with the batch's tensors on the device;
`extra` travels untouched (the trainer passes the loader position that goes with the batch,
since the loader itself is one batch further on). On a CPU device it passes pairs through.
"""

from __future__ import annotations

from typing import Any, Dict, Iterator, Optional, Tuple

import torch

Pair = Tuple[Dict[str, Any], Any]


class DevicePrefetcher:
    def __init__(self, source: Iterator[Pair], device: torch.device):
        self.source = source
        self.device = device
        self.cuda = device.type == "cuda"
        self.stream = torch.cuda.Stream(device=device) if self.cuda else None
        self._next: Optional[Pair] = None

    def __iter__(self) -> "DevicePrefetcher":
        return self

    def _stage(self) -> None:
        batch, extra = next(self.source)
        with torch.cuda.stream(self.stream):
            staged = {k: v.pin_memory().to(self.device, non_blocking=True)
                      if isinstance(v, torch.Tensor) and v.device.type == "cpu" else v
                      for k, v in batch.items()}
        self._next = (staged, extra)

    def __next__(self) -> Pair:
        if not self.cuda:
            return next(self.source)
        if self._next is None:
            self._stage()
        batch, extra = self._next
        compute = torch.cuda.current_stream(self.device)
        compute.wait_stream(self.stream)
        for value in batch.values():
            if isinstance(value, torch.Tensor) and value.device.type == "cuda":
                value.record_stream(compute)
        self._next = None
        try:
            self._stage()  # the next batch's copy overlaps this step's compute
        except StopIteration:
            pass
        return batch, extra
