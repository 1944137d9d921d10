"""A researcher's own training script (engine/script.py): build the config in Python, add a
callback the config does not name, train. Its run shows in `olmo-tui runs`, the monitor and
`olmo-tui compare` like any other.

    python examples/train.py                                  # one process
    torchrun --nproc_per_node=2 examples/train.py             # two ranks
    python examples/train.py --trainer.max_duration=20steps   # overrides, as on the CLI
"""

import sys

from engine.script import config, train
from engine.train.callback import Callback


class EmbeddingNorm(Callback):
    """Records `embedding_norm`, the mean L2 norm of the embedding rows, on logged steps."""

    priority = 20  # a metric producer: before the metrics writer

    def post_step(self):
        trainer = self.trainer
        if trainer.global_step % trainer.metrics_collect_interval:
            return
        weight = trainer.train_module.model.embeddings.weight
        if hasattr(weight, "full_tensor"):  # an FSDP shard: gather the table (small)
            weight = weight.full_tensor()
        trainer.record_metric("embedding_norm", weight.detach().float().norm(dim=-1).mean())


if __name__ == "__main__":
    cfg = config(preset="tiny-cpu", overrides=["--run_name=my-script", "--trainer.max_duration=40steps",
                                                *sys.argv[1:]])
    sys.exit(train(cfg, callbacks=[EmbeddingNorm()]))
