"""Downstream evaluation: task files and log-likelihood scoring, checked against answers known in
closed form. The scoring model is built by hand (no training): it predicts that the text repeats
with a fixed period, so on a task whose contexts have exactly that length it prefers the choice
that repeats the context, by a margin we can write down."""

from __future__ import annotations

import json
import math
import random
import string

import pytest
import torch
from torch import nn

from engine.config.model import ModelConfig
from engine.errors import UserError
from engine.evals.mc_scoring import (
    MCCounts,
    build_requests,
    count_correct,
    evaluate_task,
    pick,
    score_requests,
    shard,
)
from engine.evals.mc_tasks import MCInstance, builtin_task_names, load_task
from engine.nn.transformer import build_model, materialize

VOCAB = 258  # the byte tokenizer's: 256 bytes, EOS 256, PAD 257
EOS, PAD = 256, 257
PERIOD = 16  # context length in characters (= byte tokens)
MARGIN = 6.0  # logit bonus of the copied token


def byte_encode(text: str):
    return list(text.encode("utf-8"))


class PeriodicCopyModel(nn.Module):
    """logits[b, t] = MARGIN on token ids[b, t + 1 - PERIOD], 0 elsewhere (uniform before that).

    So p(next = the token one period back) = q = e^M / (e^M + V - 1), any other token r = 1 / (...).
    """

    def __init__(self, period: int, margin: float, vocab: int):
        super().__init__()
        self.period, self.margin, self.vocab = period, margin, vocab
        self.calls = 0

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        batch, length = input_ids.shape
        logits = torch.zeros(batch, length, self.vocab)  # (B, T, V)
        if length >= self.period:
            source = input_ids[:, : length - self.period + 1]  # (B, T - P + 1): token one period back
            logits[:, self.period - 1:].scatter_(-1, source[..., None], self.margin)
        return logits


def _letters(rng: random.Random, n: int) -> str:
    return "".join(rng.choice(string.ascii_lowercase) for _ in range(n))


def _differs_everywhere(rng: random.Random, text: str) -> str:
    return "".join(rng.choice([c for c in string.ascii_lowercase if c != ch]) for ch in text)


def _closed_form_task(path):
    """13 instances; the context is PERIOD letters, the prefix EOS makes it start at position 1.

    kind A (repeat vs. a same-length string differing at every character): the model prefers the
      repeat under acc and acc_norm (16 log q > 16 log r).
    kind B (repeat vs. one wrong character): acc prefers the single character whenever
      log r > 16 log q; acc_norm prefers the repeat (log q > log r).
    """
    rng = random.Random(7)
    lines, expected_acc, expected_norm = [], 0, 0
    # (kind, gold is the repeat?, count)
    plan = [("A", True, 6), ("A", False, 2), ("B", True, 4), ("B", False, 1)]
    for kind, gold_is_repeat, count in plan:
        for _ in range(count):
            context = _letters(rng, PERIOD)
            other = _differs_everywhere(rng, context) if kind == "A" else _differs_everywhere(rng, context[0])
            repeat_at = rng.randrange(2)
            choices = [other, other]
            choices[repeat_at] = context
            gold = repeat_at if gold_is_repeat else 1 - repeat_at
            lines.append(json.dumps({"context": context, "choices": choices, "gold": gold}))
            acc_picks_repeat = kind == "A"
            expected_acc += int(acc_picks_repeat == gold_is_repeat)
            expected_norm += int(gold_is_repeat)  # acc_norm always picks the repeat
    path.write_text("\n".join(lines) + "\n")
    return len(lines), expected_acc, expected_norm


def test_closed_form_accuracy_for_a_model_that_prefers_the_repeat(tmp_path):
    denominator = math.exp(MARGIN) + VOCAB - 1
    log_q, log_r = MARGIN - math.log(denominator), -math.log(denominator)
    # The premises of the expected answers, checked rather than assumed:
    assert log_r > PERIOD * log_q  # one wrong character beats 16 right ones in total log-likelihood
    assert log_q > log_r  # but not per character
    n, expected_acc, expected_norm = _closed_form_task(tmp_path / "repeat.jsonl")
    assert (n, expected_acc, expected_norm) == (13, 7, 10)

    task = load_task(str(tmp_path / "repeat.jsonl"))
    assert task.name == "repeat"
    model = PeriodicCopyModel(PERIOD, MARGIN, VOCAB)
    metrics = evaluate_task(model, task, byte_encode, prefix_id=EOS, pad_id=PAD, max_length=64,
                            batch_size=3, device=torch.device("cpu"))
    assert metrics == {"acc": 7 / 13, "acc_norm": 10 / 13}

    # The per-choice log-likelihoods themselves match the closed form.
    requests = build_requests(task.instances, byte_encode, EOS, 64)
    scores = score_requests(model, requests, batch_size=4, pad_id=PAD, device=torch.device("cpu"))
    for request, score in zip(requests, scores, strict=True):
        instance = task.instances[request.instance]
        text = instance.choices[request.choice]
        right = sum(a == b for a, b in zip(text, instance.context[:len(text)], strict=True))  # choice vs the context it repeats
        expected = right * log_q + (len(text) - right) * log_r
        assert score == pytest.approx(expected, abs=1e-4)


def test_scores_do_not_depend_on_batching_or_padding():
    """A real (randomly initialised) transformer: right padding and batch size leave scores unchanged."""
    cfg = ModelConfig(d_model=32, n_layers=2, n_heads=2, vocab_size=VOCAB, mlp_multiple_of=16)
    model = materialize(build_model(cfg), torch.device("cpu"), seed=0).eval()
    task = load_task("sample-mc", limit=3)
    requests = build_requests(task.instances, byte_encode, EOS, 128)
    one = score_requests(model, requests, batch_size=1, pad_id=PAD, device=torch.device("cpu"))
    many = score_requests(model, requests, batch_size=7, pad_id=PAD, device=torch.device("cpu"))
    assert one == pytest.approx(many, abs=1e-4)
    assert all(s < 0 for s in one)


def test_long_contexts_are_cut_from_the_left_and_the_choice_is_scored_whole():
    instance = MCInstance(context="abcdefghij", choices=(" xyz", " k"), gold=0)
    requests = build_requests([instance], byte_encode, EOS, max_length=6)
    first = requests[0]
    assert first.tokens == byte_encode("hij xyz") and first.num_scored == 4
    assert len(first.tokens) == 7  # max_length inputs + the last target
    assert requests[1].tokens == byte_encode("efghij k")[-7:] and requests[1].num_scored == 2


def test_ties_go_to_the_first_choice_and_padding_batches_keep_ranks_in_step():
    assert pick([-1.0, -1.0, -2.0]) == 0 and pick([-3.0, -1.0, -1.0]) == 1
    instances = [MCInstance("ab", (" c", " d"), gold=1)]
    requests = build_requests(instances, byte_encode, EOS, 32)
    model = PeriodicCopyModel(64, 0.0, VOCAB)  # never copies: every choice scores the same
    scores = score_requests(model, requests, batch_size=8, pad_id=PAD, device=torch.device("cpu"),
                            num_batches=3)
    assert model.calls == 3  # one real batch and two all-padding ones
    assert count_correct(instances, requests, scores).as_metrics() == {"acc": 0.0, "acc_norm": 0.0}


def test_shards_cover_every_instance_once():
    items = list(range(10))
    slices = [shard(items, rank, 4) for rank in range(4)]
    assert [start for start, _ in slices] == [0, 3, 6, 9]
    assert [x for _, part in slices for x in part] == items
    assert shard(items[:2], 3, 4) == (2, [])
    assert MCCounts().as_metrics()["acc"] != MCCounts().as_metrics()["acc"]  # NaN: nothing scored


def test_sample_task_ships_and_loads():
    assert "sample-mc" in builtin_task_names()
    task = load_task("sample-mc")
    assert len(task.instances) == 24
    assert all(len(i.choices) == 4 and i.choices[i.gold].startswith(" ") for i in task.instances)
    golds = [i.gold for i in task.instances]
    assert sorted(set(golds)) == [0, 1, 2, 3] and max(golds.count(g) for g in range(4)) == 6


def test_hellaswag_layout_is_understood(tmp_path):
    path = tmp_path / "hs_val.jsonl"
    path.write_text(json.dumps({"ctx": "He opens the fridge and", "endings": ["takes out milk.", "flies."],
                                "label": "0", "activity_label": "Cooking"}) + "\n")
    task = load_task(str(path))
    assert task.name == "hs_val"
    assert task.instances[0] == MCInstance("He opens the fridge and", (" takes out milk.", " flies."), 0)


@pytest.mark.parametrize("line, fragment", [
    ('{"context": "a", "choices": ["b", "c"], "gold": 2}', "'gold' must be an integer index into the 2 choices"),
    ('{"context": "a", "choices": ["b"], "gold": 0}', "'choices' must be a list of at least 2"),
    ('{"question": "a"}', "needs keys context/choices/gold"),
    ('not json', "Expecting value"),
])
def test_bad_task_lines_name_the_file_and_line(tmp_path, line, fragment):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"context": "x", "choices": [" y", " z"], "gold": 1}\n' + line + "\n")
    with pytest.raises(UserError) as info:
        load_task(str(path))
    assert info.value.field == "trainer.callbacks.downstream_evaluator.tasks"
    assert f"{path}:2:" in info.value.message and fragment in info.value.message


def test_unknown_task_names_the_built_ins(tmp_path):
    with pytest.raises(UserError, match="unknown task 'hellaswag'; built-in tasks: sample-mc"):
        load_task("hellaswag")
    with pytest.raises(UserError, match="does not exist"):
        load_task(str(tmp_path / "missing.jsonl"))
