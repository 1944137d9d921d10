"""The torch half of my_components: imported by the engine only, through the "module:attr"
references in __init__.py."""

import torch
from torch import nn

from engine.train.callback import Callback


class ReLU2MLP(nn.Module):
    """w2(relu(w1 x)^2); the builder of an MLP gets (its config, the model config, the block index).

    Named w1 / w2 like the built-in MLP's projections, so the engine's init (w2 scaled as an
    output projection) and the optimizer's parameter-group globs treat them alike."""

    def __init__(self, cfg, model, index: int):
        super().__init__()
        hidden = cfg.hidden(model)
        self.w1 = nn.Linear(model.d_model, hidden, bias=False)
        self.w2 = nn.Linear(hidden, model.d_model, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # (B, T, d) -> (B, T, hidden) -> (B, T, d)
        return self.w2(torch.relu(self.w1(x)).square())


class WeightStats(Callback):
    """A callback's builder gets its config section (trainer.callbacks.weight_stats)."""

    priority = 20  # a metric producer: before the metrics writer (-10) and console logger (-20)

    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg

    def post_step(self) -> None:
        trainer = self.trainer
        if trainer.global_step % self.cfg.every and trainer.global_step % trainer.metrics_collect_interval:
            return
        squares, count, sharded = 0.0, 0, False
        for param in trainer.train_module.model.parameters():
            count += param.numel()  # the full tensor's size, sharded or not
            if hasattr(param, "to_local"):  # an FSDP shard: this rank's part only
                param, sharded = param.to_local(), True
            squares = squares + param.detach().float().square().sum()
        # A tensor: the trainer averages it over the ranks when it logs (no host sync here), so
        # shards' squares, averaged, are summed back by the world size.
        scale = trainer.world_size if sharded else 1
        trainer.record_metric("weight_rms", (squares * scale / count).sqrt())
