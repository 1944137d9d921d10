"""Scheduled garbage collection: automatic GC is paused so a collection can never stall a random
step (and, with many ranks, every other rank waiting on it); a cheap generation-1 collection
runs every `gc_interval` steps instead, and automatic GC is restored at the end."""

from __future__ import annotations

import gc

from engine.config.trainer import GarbageCollectorConfig

from ..callback import Callback


class GarbageCollectorCallback(Callback):
    name = "garbage_collector"
    priority = 0

    def __init__(self, config: GarbageCollectorConfig):
        super().__init__()
        self.gc_interval = config.gc_interval
        self._was_enabled = gc.isenabled()

    def pre_train(self) -> None:
        self._was_enabled = gc.isenabled()
        gc.disable()
        gc.collect()

    def post_step(self) -> None:
        if self.trainer.global_step % self.gc_interval == 0:
            gc.collect(1)

    def post_checkpoint_saved(self, path) -> None:
        gc.collect(1)  # saving allocates many short-lived objects

    def close(self) -> None:
        if self._was_enabled:
            gc.enable()
