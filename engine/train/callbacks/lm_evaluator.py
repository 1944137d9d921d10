"""Held-out perplexity every `eval_interval` steps: `eval_batches` micro-batches of padded
evaluation instances (the label_mask leaves padding out) of each held-out set, loss averaged
over every real token of every rank. Records eval/lm/loss and eval/lm/ppl (over all sets
together, token-weighted) and, for each named set (dataset.eval_sets, or each source of a
mixture), eval/lm/<name>/loss and eval/lm/<name>/ppl; its time is left out of throughput."""

from __future__ import annotations

import math
from typing import Tuple

from engine.config.trainer import LMEvaluatorConfig

from ..callback import Callback


def _ppl(loss: float) -> float:
    return math.exp(min(loss, 700.0))


class LMEvaluatorCallback(Callback):
    name = "lm_evaluator"
    priority = 50

    def __init__(self, config: LMEvaluatorConfig):
        super().__init__()
        self.eval_interval = config.eval_interval
        self.eval_batches = config.eval_batches

    def post_step(self) -> None:
        trainer = self.trainer
        if not trainer.eval_data or trainer.global_step % self.eval_interval:
            return
        loss_sum, n_tokens = 0.0, 0.0
        with trainer.excluded_time():
            for name, batches in trainer.eval_data.items():
                set_loss, set_tokens = self.evaluate(batches)
                loss_sum, n_tokens = loss_sum + set_loss, n_tokens + set_tokens
                if name:
                    trainer.record_metric(f"eval/lm/{name}/loss", set_loss / set_tokens, force_log=True)
                    trainer.record_metric(f"eval/lm/{name}/ppl", _ppl(set_loss / set_tokens), force_log=True)
        trainer.record_metric("eval/lm/loss", loss_sum / n_tokens, force_log=True)
        trainer.record_metric("eval/lm/ppl", _ppl(loss_sum / n_tokens), force_log=True)

    def evaluate(self, batches) -> Tuple[float, float]:
        """(CE summed over real tokens, their count) of one held-out set; eval_batch already sums
        over data-parallel ranks."""
        trainer = self.trainer
        loss_sum, n_tokens = 0.0, 0.0
        for index, batch in enumerate(batches()):
            if index >= self.eval_batches:
                break
            batch_loss, batch_tokens = trainer.train_module.eval_batch(batch)
            loss_sum += float(batch_loss)
            n_tokens += float(batch_tokens)
        if n_tokens == 0:
            raise RuntimeError("the evaluation data yielded no tokens to score")
        return loss_sum, n_tokens
