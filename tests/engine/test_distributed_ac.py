"""Activation checkpointing, checked by invariants: how many times each module's forward runs
in one training step (a recompute counter), and the FLOPs the step performs."""

from __future__ import annotations

from collections import Counter

import pytest
import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from engine.config import load_experiment
from engine.errors import UserError
from engine.nn.fused_loss import chunk_objective
from engine.train_module.train_module import TrainModule

SEQ, VOCAB, D = 32, 128, 64


def experiment(ac=None, compile_model=False, **model):
    tm = {"rank_microbatch_size": 4 * SEQ, "max_sequence_length": SEQ, "compile_model": compile_model}
    if ac:
        tm["ac_config"] = ac
    return load_experiment({
        "model": {"d_model": D, "n_layers": 4, "n_heads": 4, "vocab_size": VOCAB, **model},
        "dataset": {"kind": "synthetic", "sequence_length": SEQ,
                    "tokenizer": {"vocab_size": VOCAB, "eos_token_id": 0, "pad_token_id": 1}},
        "data_loader": {"global_batch_size": 4 * SEQ},
        "train_module": tm,
    })


IDS = torch.randint(0, VOCAB, (4, SEQ), generator=torch.Generator().manual_seed(0))


def forward_calls(tm: TrainModule) -> Counter:
    """Calls of every Linear during one train_batch (one micro-batch)."""
    calls: Counter = Counter()
    handles = [m.register_forward_pre_hook(lambda mod, args, name=name: calls.update([name]))
               for name, m in tm.model.named_modules() if isinstance(m, nn.Linear)]
    tm.train_batch({"input_ids": IDS})
    for h in handles:
        h.remove()
    return calls


def expected_calls(recomputed) -> Counter:
    out = Counter()  # the head runs inside the chunked loss, not as a module call
    for i in range(4):
        for name in ("attention.w_q", "attention.w_k", "attention.w_v", "attention.w_out", "mlp.w1", "mlp.w2", "mlp.w3"):
            out[f"blocks.{i}.{name}"] = 2 if recomputed(i, name) else 1
    return out


@pytest.mark.parametrize("ac,recomputed", [
    (None, lambda i, name: False),
    ({"mode": "full"}, lambda i, name: True),
    ({"mode": "selected_blocks", "block_interval": 2}, lambda i, name: i % 2 == 0),
    ({"mode": "selected_modules", "modules": ["blocks.*.mlp"]}, lambda i, name: name.startswith("mlp")),
    ({"mode": "selected_modules", "modules": ["blocks.3.attention"]}, lambda i, name: i == 3 and name.startswith("att")),
])
def test_recompute_counter(ac, recomputed):
    assert forward_calls(TrainModule(experiment(ac))) == expected_calls(recomputed)


class MatmulFlops(TorchDispatchMode):
    """Counts 2*M*K*N for every matrix product dispatched (forward, backward and recompute)."""

    def __init__(self):
        super().__init__()
        self.flops = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if func is torch.ops.aten.mm.default:
            (m, k), n = args[0].shape, args[1].shape[1]
            self.flops += 2 * m * k * n
        elif func is torch.ops.aten.bmm.default:
            (b, m, k), n = args[0].shape, args[1].shape[2]
            self.flops += 2 * b * m * k * n
        return out


def step_flops(tm: TrainModule) -> int:
    with MatmulFlops() as counter:
        tm.train_batch({"input_ids": IDS})
    return counter.flops


def test_full_checkpointing_adds_exactly_one_forward_of_the_blocks():
    plain = step_flops(TrainModule(experiment()))
    tm = TrainModule(experiment())
    with torch.no_grad(), MatmulFlops() as counter:
        tm.model(IDS)
    head = 2 * IDS.numel() * D * VOCAB  # the only non-block matmul in the forward
    blocks_forward = counter.flops - head
    assert blocks_forward > 0
    # Recomputing everything: exactly one more forward of every block.
    with torch.utils.checkpoint.set_checkpoint_early_stop(False):
        assert step_flops(TrainModule(experiment({"mode": "full"}))) - plain == blocks_forward
    # torch's default "early stop" ends a block's recomputation once the last tensor backward
    # needs is rebuilt: the input of mlp.w2 is saved before w2's matmul runs, so each block
    # skips that one matmul (hidden x d per token).
    w2 = 2 * IDS.numel() * tm.model.config.mlp_hidden * D
    assert step_flops(TrainModule(experiment({"mode": "full"}))) - plain == blocks_forward - 4 * w2


def test_checkpointing_keeps_losses_and_gradients():
    a, b = TrainModule(experiment()), TrainModule(experiment({"mode": "full"}))
    la, lb = a.train_batch({"input_ids": IDS})["ce_loss"], b.train_batch({"input_ids": IDS})["ce_loss"]
    assert torch.equal(la, lb)
    for (name, pa), pb in zip(a.model.named_parameters(), b.model.parameters(), strict=True):
        assert torch.allclose(pa.grad, pb.grad, rtol=1e-6, atol=1e-9), name
    assert [n for n, _ in a.model.named_parameters()] == [n for n, _ in b.model.named_parameters()]


def test_unmatched_module_pattern_is_a_user_error():
    with pytest.raises(UserError, match="ac_config.modules"):
        TrainModule(experiment({"mode": "selected_modules", "modules": ["blocks.*.feed_forward"]}))


def matmuls_in_backward_graphs(budget: float, monkeypatch) -> list:
    """Build a compiled model with ac mode 'budget' and count the matmuls in each block's
    backward graph as partitioned by the min-cut partitioner (the one inductor uses)."""
    from functorch.compile import make_boxed_func, min_cut_rematerialization_partition
    from torch._dynamo.backends.common import aot_autograd

    import engine.distributed.compile as compile_module

    counts = []

    def backward_compiler(gm, example_inputs):
        counts.append(sum(n.target in (torch.ops.aten.mm.default, torch.ops.aten.bmm.default) for n in gm.graph.nodes))
        return make_boxed_func(gm.forward)

    backend = aot_autograd(fw_compiler=lambda gm, _: make_boxed_func(gm.forward), bw_compiler=backward_compiler,
                           partition_fn=min_cut_rematerialization_partition)
    monkeypatch.setattr(compile_module, "BACKEND", backend)
    torch._dynamo.reset()
    tm = TrainModule(experiment({"mode": "budget", "activation_memory_budget": budget}, compile_model=True))
    tm.model.chunk_fn = chunk_objective  # only the blocks matter here: keep the loss eager
    tm.train_batch({"input_ids": IDS})
    return counts


def test_budget_mode_trades_saved_activations_for_recomputed_matmuls(monkeypatch):
    import torch._functorch.config as functorch_config

    before = functorch_config.activation_memory_budget
    try:
        save_all = matmuls_in_backward_graphs(1.0, monkeypatch)
        half = matmuls_in_backward_graphs(0.5, monkeypatch)
        recompute_all = matmuls_in_backward_graphs(0.0, monkeypatch)
    finally:
        functorch_config.activation_memory_budget = before
        torch._dynamo.reset()
    # All 4 blocks share one graph. Budget 1: backward holds only the 2 gradient matmuls of each
    # of the 7 projections. Budget 0: it also recomputes the 6 forward matmuls whose outputs
    # backward needs (mlp.w2's output is needed by nobody). In between: some of them.
    assert save_all == [14]
    assert recompute_all == [14 + 6]
    assert 14 <= half[0] <= 20


# --- activation checkpointing inside torch.compile'd blocks (compile_model = true) ---------------

MATMULS = (torch.ops.aten.mm.default, torch.ops.aten.bmm.default)


def compiled_graph_matmuls(ac, monkeypatch, **model):
    """Compile the blocks with ac (fullgraph, as the engine does) through AOTAutograd with the
    partitioner inductor uses, run one train_batch, and count the matmuls in every forward and
    backward graph. Returns (forward counts, backward counts, ce_loss)."""
    from functorch.compile import make_boxed_func, min_cut_rematerialization_partition
    from torch._dynamo.backends.common import aot_autograd

    import engine.distributed.compile as compile_module

    forward, backward = [], []

    def counting(into):
        def compiler(gm, example_inputs):
            into.append(sum(n.target in MATMULS for n in gm.graph.nodes))
            return make_boxed_func(gm.forward)
        return compiler

    monkeypatch.setattr(compile_module, "BACKEND", aot_autograd(
        fw_compiler=counting(forward), bw_compiler=counting(backward),
        partition_fn=min_cut_rematerialization_partition))
    torch._dynamo.reset()
    tm = TrainModule(experiment(ac, compile_model=True, **model))
    tm.model.chunk_fn = chunk_objective  # only the blocks matter here: keep the loss eager
    loss = tm.train_batch({"input_ids": IDS})["ce_loss"]
    torch._dynamo.reset()
    return forward, backward, loss


def test_compiled_blocks_recompute_inside_the_compiled_backward(monkeypatch):
    # Regression: checkpointing replaced a block's forward by a bare partial of
    # torch.utils.checkpoint, a frame Dynamo skips, so fullgraph compile raised "found no
    # compiled frames" for ac mode full and selected_blocks.
    plain_fw, plain_bw, plain_loss = compiled_graph_matmuls(None, monkeypatch)
    full_fw, full_bw, full_loss = compiled_graph_matmuls({"mode": "full"}, monkeypatch)
    sel_fw, sel_bw, sel_loss = compiled_graph_matmuls({"mode": "selected_blocks", "block_interval": 2},
                                                      monkeypatch)
    # Without AC all 4 blocks share one graph; each projection's matmul has 2 gradient matmuls.
    (projections,) = plain_fw
    assert plain_bw == [2 * projections]
    # Full AC: still one graph shared by every block (no recompile per block), and its backward
    # also recomputes every forward matmul whose output backward needs (all but mlp.w2's, which
    # only feeds the residual sum): the checkpoint runs inside the compiled region.
    assert full_fw == [projections]
    assert full_bw == [2 * projections + projections - 1]
    # Every other block checkpointed: exactly the two graphs above, one each.
    assert sorted(sel_bw) == sorted(plain_bw + full_bw)
    assert sel_fw == [projections, projections]
    assert torch.equal(full_loss, plain_loss) and torch.equal(sel_loss, plain_loss)


# The families of the presets that turn on compile + AC (llama2-70b, llama3-8b: llama;
# olmo2-32b: olmo2; olmo3-32b: olmo3; qwen3-8b: qwen3), each with its block's own features on:
# OLMo-2's post-norms, OLMo-3's sliding window (shorter than the sequence), Qwen3's QK-norm.
PRESET_FAMILIES = {
    "olmo2": {"family": "olmo2"},
    "olmo3": {"family": "olmo3", "qk_norm": True, "sliding_window": 12, "full_attention_interval": 2},
    "qwen3": {"family": "qwen3", "qk_norm": True, "head_dim": 24},
}


@pytest.mark.parametrize("family", sorted(PRESET_FAMILIES))
def test_compiled_checkpointed_blocks_of_every_preset_family(family, monkeypatch):
    model = PRESET_FAMILIES[family]
    eager = TrainModule(experiment(**model)).train_batch({"input_ids": IDS})["ce_loss"]
    forward, backward, loss = compiled_graph_matmuls({"mode": "full"}, monkeypatch, **model)
    assert backward and all(b > 2 * f for f, b in zip(forward, backward, strict=True))  # recomputes
    assert torch.allclose(loss, eager, rtol=1e-5)


def train_two_steps(ac, compile_model):
    torch._dynamo.reset()
    tm = TrainModule(experiment(ac, compile_model=compile_model))
    losses = []
    for seed in range(2):
        ids = torch.randint(0, VOCAB, (4, SEQ), generator=torch.Generator().manual_seed(seed))
        losses.append(tm.train_batch({"input_ids": ids})["ce_loss"])
        tm.optim_step()
    torch._dynamo.reset()
    return torch.stack(losses), [p.detach().clone() for p in tm.model.parameters()]


@pytest.mark.slow  # inductor compiles (blocks, loss): 27 s with a cold compile cache on 2 shared cores
def test_compile_with_checkpointing_trains_like_compile_without():
    # The engine's real compile path (inductor), two optimizer steps.
    eager_losses, _ = train_two_steps(None, compile_model=False)
    plain_losses, plain_params = train_two_steps(None, compile_model=True)
    assert torch.allclose(plain_losses, eager_losses, rtol=1e-4)
    for ac in ({"mode": "full"}, {"mode": "selected_blocks", "block_interval": 2}):
        losses, params = train_two_steps(ac, compile_model=True)
        # Recomputing runs the same compiled kernels on the same inputs: same numbers.
        assert torch.equal(losses, plain_losses), ac
        for a, b in zip(params, plain_params, strict=True):
            assert torch.allclose(a, b, rtol=1e-5, atol=1e-7), ac
