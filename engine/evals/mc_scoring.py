"""Scoring multiple-choice tasks by log-likelihood.

For each instance and each choice the model reads `prefix + context + choice` and we add up
the log-probabilities of the choice's tokens, each given everything before it:

    ll(choice) = sum_{t in choice tokens} log p(token_t | tokens_<t)

acc       picks argmax ll(choice): the most likely continuation as a whole. Long choices pay
          for every extra token, so it leans towards short answers.
acc_norm  picks argmax ll(choice) / len(choice in characters): log-likelihood per character
          of the choice text (Python `len`, i.e. Unicode characters, the choice's leading
          space included). Per character rather than per token so the score does not depend
          on the tokenizer: the same file gives comparable acc_norm for a byte-level and a BPE
          model. This is the normalisation lm-evaluation-harness and OLMo's evals call
          acc_norm.

Ties go to the lower choice index (deterministic; a model that scores every choice the same
is right exactly when gold = 0).

The prefix is the tokenizer's BOS id when it has one, else EOS: in pre-training data every
document follows an EOS, so a context read after EOS looks like the start of a document. A
sequence longer than `max_length + 1` tokens loses tokens from the left of its context; the
choice is always scored whole (a choice longer than the window is cut from the left too).

Instances can be split over data-parallel ranks (`shard`); `score_requests` can run extra
all-padding batches so that every rank calls the model the same number of times, which FSDP
needs (each forward gathers parameters collectively).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence

import torch

from .mc_tasks import MCInstance, MCTask

Encoder = Callable[[str], Sequence[int]]
Model = Callable[[torch.Tensor], torch.Tensor]  # input_ids (B, T) long -> logits (B, T, V)


@dataclass(frozen=True)
class Request:
    """One (instance, choice) pair as token ids; the last `num_scored` ids are the choice."""

    instance: int
    choice: int
    tokens: List[int]
    num_scored: int


def build_requests(instances: Sequence[MCInstance], encode: Encoder, prefix_id: int, max_length: int,
                   first_index: int = 0) -> List[Request]:
    """Token ids for every choice of every instance; `first_index` numbers the instances."""
    requests: List[Request] = []
    for offset, instance in enumerate(instances):
        context = [prefix_id, *(int(i) for i in encode(instance.context))]
        for choice_index, choice in enumerate(instance.choices):
            continuation = [int(i) for i in encode(choice)]
            if not continuation:
                raise ValueError(f"choice {choice!r} encodes to no tokens")
            tokens = (context + continuation)[-(max_length + 1):]  # window of max_length inputs
            scored = min(len(continuation), len(tokens) - 1)
            requests.append(Request(first_index + offset, choice_index, tokens, scored))
    return requests


@torch.no_grad()
def score_requests(model: Model, requests: Sequence[Request], *, batch_size: int, pad_id: int,
                   device: torch.device, num_batches: Optional[int] = None) -> List[float]:
    """Sum of the choice tokens' log-probabilities for each request (same order as given).

    `num_batches`, when larger than needed, adds all-padding forward passes whose output is
    thrown away (keeps FSDP ranks in step)."""
    # Longest first, so each batch pads little and a too-large batch fails on the first one.
    order = sorted(range(len(requests)), key=lambda i: -len(requests[i].tokens))
    scores = [0.0] * len(requests)
    batches = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    total = max(len(batches), num_batches or 0)
    for index in range(total):
        if index >= len(batches):
            model(torch.full((1, 1), pad_id, dtype=torch.long, device=device))
            continue
        batch = [requests[i] for i in batches[index]]
        width = max(len(r.tokens) for r in batch) - 1
        input_ids = torch.full((len(batch), width), pad_id, dtype=torch.long)  # (B, T)
        for row, request in enumerate(batch):
            # Right padding: a causal model's outputs at real positions never see the padding.
            input_ids[row, : len(request.tokens) - 1] = torch.tensor(request.tokens[:-1])
        logits = model(input_ids.to(device))  # (B, T, V)
        for row, request in enumerate(batch):
            end = len(request.tokens) - 1  # logits at position t predict token t + 1
            start = end - request.num_scored
            row_logits = logits[row, start:end].float()  # (num_scored, V)
            targets = torch.tensor(request.tokens[start + 1:end + 1], device=row_logits.device)
            logprobs = torch.log_softmax(row_logits, dim=-1).gather(-1, targets[:, None])  # (num_scored, 1)
            scores[batches[index][row]] = float(logprobs.sum())
    return scores


def pick(values: Sequence[float]) -> int:
    """Index of the largest value; ties go to the lowest index."""
    best = 0
    for index, value in enumerate(values):
        if value > values[best]:
            best = index
    return best


@dataclass
class MCCounts:
    """Correct answers over a set of instances; adds up across ranks."""

    correct: int = 0
    correct_norm: int = 0
    total: int = 0

    def as_metrics(self) -> Dict[str, float]:
        if self.total == 0:
            return {"acc": math.nan, "acc_norm": math.nan}
        return {"acc": self.correct / self.total, "acc_norm": self.correct_norm / self.total}


def count_correct(instances: Sequence[MCInstance], requests: Sequence[Request], scores: Sequence[float],
                  first_index: int = 0) -> MCCounts:
    """Tally acc and acc_norm from per-request log-likelihoods (see the module docstring)."""
    per_instance: Dict[int, Dict[int, float]] = {}
    for request, score in zip(requests, scores):
        per_instance.setdefault(request.instance, {})[request.choice] = score
    counts = MCCounts()
    for offset, instance in enumerate(instances):
        choice_scores = per_instance[first_index + offset]
        lls = [choice_scores[c] for c in range(len(instance.choices))]
        per_char = [ll / len(text) for ll, text in zip(lls, instance.choices)]
        counts.correct += int(pick(lls) == instance.gold)
        counts.correct_norm += int(pick(per_char) == instance.gold)
        counts.total += 1
    return counts


def shard(instances: Sequence[MCInstance], rank: int, world_size: int) -> tuple[int, Sequence[MCInstance]]:
    """This rank's contiguous slice of the instances and the index of its first one."""
    per_rank = -(-len(instances) // world_size)
    start = min(rank * per_rank, len(instances))
    return start, instances[start:start + per_rank]


def evaluate_task(model: Model, task: MCTask, encode: Encoder, *, prefix_id: int, pad_id: int,
                  max_length: int, batch_size: int, device: torch.device) -> Dict[str, float]:
    """acc and acc_norm of one task on one process (the in-loop callback adds sharding)."""
    requests = build_requests(task.instances, encode, prefix_id, max_length)
    scores = score_requests(model, requests, batch_size=batch_size, pad_id=pad_id, device=device)
    return count_correct(task.instances, requests, scores).as_metrics()
