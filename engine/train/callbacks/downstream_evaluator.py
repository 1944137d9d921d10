"""Multiple-choice accuracy every `eval_interval` steps: records eval/downstream/<task>/acc and
acc_norm (engine/evals/mc_scoring.py defines both; acc_norm is per character).

Instances are split over data-parallel ranks; every rank runs the same number of forward
passes (padding batches where it has fewer), which FSDP needs, and the correct counts are summed
over all ranks. Tasks and the tokenizer are loaded in post_attach, so a missing task file or
tokenizer is a user error before the first step. The evaluation time is left out of throughput.
"""

from __future__ import annotations

import contextlib
import time
from typing import Dict, List

import torch
import torch.distributed as dist

from engine.config.trainer import DownstreamEvaluatorConfig
from engine.evals.mc_scoring import MCCounts, build_requests, count_correct, score_requests, shard
from engine.evals.mc_tasks import MCTask, load_task

from ..callback import Callback


class DownstreamEvaluatorCallback(Callback):
    name = "downstream_evaluator"
    priority = 45  # a metric producer: before the metrics writer and console logger

    def __init__(self, config: DownstreamEvaluatorConfig):
        super().__init__()
        self.config = config
        self.tasks: List[MCTask] = []

    def post_attach(self) -> None:
        from engine.data.tokenizer import build_tokenizer

        cfg = self.trainer.cfg
        self.tasks = [load_task(spec, self.config.max_instances) for spec in self.config.tasks]
        tokenizer_cfg = cfg.dataset.tokenizer
        self._tokenizer = build_tokenizer(tokenizer_cfg)
        # Contexts are read as the start of a document: after BOS if the tokenizer has one, else EOS.
        self._prefix_id = tokenizer_cfg.bos_token_id if tokenizer_cfg.bos_token_id is not None \
            else tokenizer_cfg.eos_token_id
        self._pad_id = tokenizer_cfg.pad_token_id
        self._max_length = cfg.dataset.sequence_length

    def post_step(self) -> None:
        trainer = self.trainer
        if trainer.global_step % self.config.eval_interval:
            return
        started = time.perf_counter()
        with trainer.excluded_time():
            results = self.evaluate()
        summary = []
        for task_name, metrics in results.items():
            for key, value in metrics.items():
                trainer.record_metric(f"eval/downstream/{task_name}/{key}", value, force_log=True)
            summary.append(f"{task_name} acc {metrics['acc']:.3f} acc_norm {metrics['acc_norm']:.3f}")
        trainer.log(f"downstream eval at step {trainer.global_step}: {'; '.join(summary)} "
                    f"({time.perf_counter() - started:.1f}s)")

    def _model_context(self):
        # The TrainModule's autocast (bf16 on GPU) so evals see the numerics training sees.
        autocast = getattr(self.trainer.train_module, "_autocast", None)
        return autocast() if autocast is not None else contextlib.nullcontext()

    def evaluate(self) -> Dict[str, Dict[str, float]]:
        trainer = self.trainer
        train_module = trainer.train_module
        model = train_module.model
        dp_rank = getattr(train_module, "dp_rank", trainer.rank)
        dp_size = getattr(train_module, "dp_world_size", trainer.world_size)
        distributed = trainer.world_size > 1 and dist.is_initialized()
        was_training = model.training
        model.eval()
        results: Dict[str, Dict[str, float]] = {}
        try:
            for task in self.tasks:
                first, instances = shard(task.instances, dp_rank, dp_size)
                requests = build_requests(instances, self._tokenizer.encode, self._prefix_id,
                                          self._max_length, first_index=first)
                num_batches = torch.tensor([-(-len(requests) // self.config.batch_size)], device=trainer.device)
                if distributed:
                    dist.all_reduce(num_batches, op=dist.ReduceOp.MAX)
                with self._model_context():
                    scores = score_requests(model, requests, batch_size=self.config.batch_size,
                                            pad_id=self._pad_id, device=trainer.device,
                                            num_batches=int(num_batches.item()))
                counts = count_correct(instances, requests, scores, first_index=first)
                totals = torch.tensor([counts.correct, counts.correct_norm, counts.total],
                                      dtype=torch.float64, device=trainer.device)
                if distributed:
                    # With tensor parallelism each instance is counted once per TP rank; the
                    # ratios below are unchanged by that common factor.
                    dist.all_reduce(totals, op=dist.ReduceOp.SUM)
                correct, correct_norm, total = (int(v) for v in totals.cpu().tolist())
                results[task.name] = MCCounts(correct, correct_norm, total).as_metrics()
        finally:
            model.train(was_training)
        return results
