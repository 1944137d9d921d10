"""Expert parallelism (engine/distributed/expert_parallel.py) and the MoE under FSDP and TP, on
CPU with gloo and real processes: each reproduces the single-process run of the same tiny MoE.

EP and EP x FSDP must match over 10 steps within 1e-5: the all-to-all moves tokens without
changing any arithmetic, so only fp32 summation order differs. TP splits the attention, whose
reordered sums can flip a near-tied top-k choice after a few steps (routing is discontinuous),
so TP is held to the dense TP tests' 3 steps and tolerances.
"""

from __future__ import annotations

import pytest
import torch

from engine.config import load_experiment, validate_experiment
from engine.testing import run_distributed_test
from engine.train_module.train_module import TrainModule

SEQ, VOCAB, ROWS = 32, 128, 8
LOSS_ATOL, NORM_RTOL = 1e-5, 1e-4


def experiment(world=1, **parallel):
    tm = {"rank_microbatch_size": 2 * SEQ, "max_sequence_length": SEQ, "max_grad_norm": 1.0,
          "optim": {"lr": 1e-2}, "scheduler": {"name": "cosine", "warmup_steps": 2}, **parallel}
    return load_experiment({
        "model": {"d_model": 32, "n_layers": 2, "n_heads": 4, "vocab_size": VOCAB,
                  "moe": {"num_experts": 4, "top_k": 2, "hidden_size": 32, "num_shared_experts": 1}},
        "dataset": {"kind": "synthetic", "sequence_length": SEQ,
                    "tokenizer": {"vocab_size": VOCAB, "eos_token_id": 0, "pad_token_id": 1}},
        "data_loader": {"global_batch_size": ROWS * SEQ},
        "train_module": tm,
        "trainer": {"max_duration": "10 steps"},
        "launch": {"nproc_per_node": world},
    })


def train(tm: TrainModule, steps: int, start: int = 0):
    """(CE loss, grad norm, load-balancing loss) of batches start..start+steps-1; each dp rank
    takes its rows' slice."""
    generator = torch.Generator().manual_seed(0)
    per = ROWS // tm.dp_world_size
    out = []
    for step in range(start + steps):
        ids = torch.randint(0, VOCAB, (ROWS, SEQ), generator=generator)
        if step < start:
            continue
        metrics = tm.train_batch({"input_ids": ids[tm.dp_rank * per:(tm.dp_rank + 1) * per]})
        norm = tm.optim_step()["grad_norm"]
        out.append((metrics["ce_loss"].item(), norm.item(), metrics["moe/lb_loss"].item()))
    return out


CASES = {  # name -> (world size, parallel settings, steps)
    "ep": (2, {"ep_config": {"degree": 2}, "dp_config": {"name": "fsdp"}}, 10),
    "tp": (2, {"tp_config": {"degree": 2}}, 3),
    # with activation checkpointing: the recomputed forward repeats the all-to-alls in step on every rank
    "ep_x_fsdp": (4, {"ep_config": {"degree": 2}, "dp_config": {"name": "fsdp"}, "ac_config": {"mode": "full"}}, 10),
}


def _runs(names, checkpoint=None):
    """Each case's losses; with `checkpoint`, the first case also saves its state after step 2
    there (saving changes nothing in the run)."""
    import torch.distributed.checkpoint as dcp

    out = {}
    for name in names:
        world, parallel, steps = CASES[name]
        tm = TrainModule(experiment(world, **parallel))
        w1 = tm.model.blocks["0"].mlp.experts.w1
        local = w1.to_local().shape[0] if hasattr(w1, "to_local") else w1.shape[0]
        losses = train(tm, 2)
        if checkpoint is not None and name == names[0]:
            dcp.save(tm.state_dict(), checkpoint_id=checkpoint)
        out[name] = {"losses": losses + train(tm, steps - 2, start=2), "local_experts": local,
                     "eval": evaluate(tm)}
    return out


def evaluate(tm: TrainModule) -> float:
    """Mean eval CE of one held-out batch (each dp rank its rows; eval_batch sums over ranks)."""
    ids = torch.randint(0, VOCAB, (ROWS, SEQ), generator=torch.Generator().manual_seed(99))
    per = ROWS // tm.dp_world_size
    rows = slice(tm.dp_rank * per, (tm.dp_rank + 1) * per)
    ce, count = tm.eval_batch({"input_ids": ids[rows], "label_mask": torch.ones(per, SEQ, dtype=torch.bool)})
    return (ce / count).item()


@pytest.fixture(scope="module")
def ep_checkpoint(tmp_path_factory):
    return str(tmp_path_factory.mktemp("ep") / "ckpt")


@pytest.fixture(scope="module")
def two_rank_results(ep_checkpoint):
    return run_distributed_test(_runs, world_size=2, args=(["ep", "tp"], ep_checkpoint))


def _check(name, results, local_experts):
    world, parallel, steps = CASES[name]
    single = TrainModule(experiment())
    ref = train(single, steps)
    ref_eval = evaluate(single)
    assert len({loss for loss, _, _ in ref}) == steps  # the model moved between steps
    for rank in results:
        assert rank[name]["local_experts"] == local_experts
        assert rank[name]["eval"] == pytest.approx(ref_eval, abs=LOSS_ATOL)  # eval dispatches tokens too
        for (ref_loss, ref_norm, ref_lb), (loss, norm, lb) in zip(ref, rank[name]["losses"], strict=True):
            assert loss == pytest.approx(ref_loss, abs=LOSS_ATOL)
            assert norm == pytest.approx(ref_norm, rel=NORM_RTOL)
            assert lb == pytest.approx(ref_lb, abs=LOSS_ATOL)


def test_two_rank_expert_parallel_equals_one_rank_over_10_steps(two_rank_results):
    _check("ep", two_rank_results, local_experts=2)  # 4 experts, 2 per rank


def test_tensor_parallel_attention_with_moe_blocks_equals_one_rank(two_rank_results):
    _check("tp", two_rank_results, local_experts=4)  # TP leaves the experts whole


@pytest.mark.slow
def test_expert_parallel_x_fsdp_on_four_ranks_equals_one_rank_over_10_steps():
    # ep 2 x dp_mod_ep 2: each expert's weights split over 2 FSDP ranks too (1 expert's half each)
    _check("ep_x_fsdp", run_distributed_test(_runs, world_size=4, args=(["ep_x_fsdp"],)), local_experts=1)


@pytest.mark.parametrize("change,paths,needle", [
    ({"model": {}}, ("train_module.ep_config.degree", "model.moe"), "needs an MoE model"),
    ({"train_module": {"ep_config": {"degree": 3}}}, ("train_module.ep_config.degree", "model.moe.num_experts"),
     "must divide model.moe.num_experts (4)"),
    ({"train_module": {"dp_config": {"name": "ddp"}}}, ("train_module.ep_config.degree",
                                                        "train_module.dp_config.name"), "FSDP only"),
])
def test_expert_parallel_mistakes_name_the_fields(change, paths, needle):
    data = experiment(4, ep_config={"degree": 2}, dp_config={"name": "fsdp"}).model_dump(mode="json")
    if "model" in change:
        data["model"]["moe"] = None
    for key, value in change.get("train_module", {}).items():
        data["train_module"][key] = value
    cfg, issues = validate_experiment(data)
    assert cfg is None
    assert any(issue.paths == paths and needle in issue.message for issue in issues), issues


def test_an_expert_parallel_checkpoint_resumes_on_one_rank(two_rank_results, ep_checkpoint):
    """The experts are saved in their global (E, ...) layout: a 1-process run loads the EP=2
    checkpoint of step 2 and continues with the EP run's losses."""
    import torch.distributed.checkpoint as dcp

    tm = TrainModule(experiment())
    state = tm.state_dict()
    dcp.load(state, checkpoint_id=ep_checkpoint)
    tm.load_state_dict(state)
    assert tm.step == 2
    later = two_rank_results[0]["ep"]["losses"][2:4]
    for (loss, norm, _), (ref_loss, ref_norm, _) in zip(train(tm, 2, start=2), later, strict=True):
        assert loss == pytest.approx(ref_loss, abs=LOSS_ATOL) and norm == pytest.approx(ref_norm, rel=NORM_RTOL)
