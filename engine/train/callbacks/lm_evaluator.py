"""Held-out perplexity every `eval_interval` steps: `eval_batches` micro-batches of padded
evaluation instances (the label_mask leaves padding out), loss averaged over every real token
of every rank. Records eval/lm/loss and eval/lm/ppl; its time is left out of throughput."""

from __future__ import annotations

import math

from engine.config.trainer import LMEvaluatorConfig

from ..callback import Callback


class LMEvaluatorCallback(Callback):
    name = "lm_evaluator"
    priority = 50

    def __init__(self, config: LMEvaluatorConfig):
        super().__init__()
        self.eval_interval = config.eval_interval
        self.eval_batches = config.eval_batches

    def post_step(self) -> None:
        trainer = self.trainer
        if trainer.eval_data is None or trainer.global_step % self.eval_interval:
            return
        with trainer.excluded_time():
            loss = self.evaluate()
        trainer.record_metric("eval/lm/loss", loss, force_log=True)
        trainer.record_metric("eval/lm/ppl", math.exp(min(loss, 700.0)), force_log=True)

    def evaluate(self) -> float:
        """Mean CE per real token; eval_batch already sums over data-parallel ranks."""
        trainer = self.trainer
        loss_sum, n_tokens = 0.0, 0.0
        for index, batch in enumerate(trainer.eval_data()):
            if index >= self.eval_batches:
                break
            batch_loss, batch_tokens = trainer.train_module.eval_batch(batch)
            loss_sum += float(batch_loss)
            n_tokens += float(batch_tokens)
        if n_tokens == 0:
            raise RuntimeError("the evaluation data yielded no tokens to score")
        return loss_sum / n_tokens
