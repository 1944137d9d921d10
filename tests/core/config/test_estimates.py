"""Pre-flight estimates: parameter and FLOP counts from first principles for every built-in
preset, the memory formula's parts, remedies, and MFU read from earlier runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.config import list_presets, resolve
from engine.config.presets import builtin_dir
from olmo_tui.core.config import estimates as est
from olmo_tui.core.config.estimates import GIB

BUILTIN = [ref.name for ref in list_presets() if ref.builtin]


def hand_count(cfg):
    """Parameters and training FLOPs/token counted tensor by tensor, written out here
    independently of ModelConfig's helpers."""
    m = cfg.model
    d, heads = m.d_model, m.n_heads
    head_dim = m.head_dim or d // heads  # Qwen3 / Gemma-3 set head_dim apart from d / heads
    q_width, kv = heads * head_dim, (m.n_kv_heads or heads) * head_dim
    hidden = m.mlp_hidden_size
    if hidden is None:  # Llama's rule: 8/3 d x multiplier, rounded up to mlp_multiple_of
        raw = int(m.mlp_multiplier * 8 * d / 3)
        hidden = m.mlp_multiple_of * ((raw + m.mlp_multiple_of - 1) // m.mlp_multiple_of)
    q, k, v, o = d * q_width, d * kv, d * kv, q_width * d
    w1, w2, w3 = d * hidden, hidden * d, d * hidden
    per_head = m.family in ("qwen3", "gemma3")  # one head_dim-sized q and k norm, shared by the heads
    qk_norms = (2 * head_dim if per_head else q_width + kv) if m.qk_norm else 0
    norms = (4 if m.family == "gemma3" else 2) * d + qk_norms
    dense_ffn = w1 + w2 + w3
    # MoE blocks: router (E x d) + E experts of 3 d h (+ shared); a token uses top_k of them
    moe = m.moe
    moe_layers = 0 if moe is None else m.n_layers - len(moe.dense_layers)
    expert = 0 if moe is None else 3 * d * moe.hidden_size
    moe_ffn = 0 if moe is None else d * moe.num_experts + (moe.num_experts + moe.num_shared_experts) * expert
    moe_active = 0 if moe is None else d * moe.num_experts + (moe.top_k + moe.num_shared_experts) * expert
    dense_layers = m.n_layers - moe_layers
    attention = q + k + v + o
    embedding = m.vocab_size * d
    head = 0 if m.tie_embeddings else m.vocab_size * d
    params = (embedding + m.n_layers * (attention + norms) + dense_layers * dense_ffn + moe_layers * moe_ffn
              + d + head)
    matmul = m.n_layers * attention + dense_layers * dense_ffn + moe_layers * moe_active + m.vocab_size * d
    seq = cfg.dataset.sequence_length
    # keys per query: seq on full layers, the window on sliding ones (every interval-th layer is full)
    keys = sum(seq if m.sliding_window is None or (i + 1) % m.full_attention_interval == 0
               else min(seq, m.sliding_window) for i in range(m.n_layers))
    flops = 6 * matmul + 12 * heads * head_dim * keys
    return params, params - embedding, flops


@pytest.mark.parametrize("name", BUILTIN)
def test_params_and_flops_match_config_arithmetic_for_every_builtin_preset(name):
    cfg = resolve(name)
    result = est.estimate(cfg)
    params, non_embedding, flops = hand_count(cfg)
    assert result.params == params == cfg.model.num_params()
    assert result.non_embedding_params == non_embedding == cfg.model.num_non_embedding_params()
    assert result.flops_per_token == flops == cfg.model.num_flops_per_token(cfg.dataset.sequence_length)
    assert result.tokens_per_step == cfg.data_loader.global_batch_size


def test_every_builtin_is_covered():
    assert len(BUILTIN) == len(list(builtin_dir().glob("*.toml"))) >= 8


def test_memory_parts_follow_the_documented_formula():
    cfg = resolve("llama2-271m", overrides=["--launch.nproc_per_node=8", "--data_loader.global_batch_size=524288"])
    m = cfg.model
    mem = est.memory_estimate(cfg)
    assert cfg.train_module.dp_config.name == "fsdp" and est.shard_factor(cfg) == 8
    assert mem.weights == pytest.approx(m.num_params() / 8 * 4)  # fp32 master weights, 8-way sharded
    assert mem.grads == mem.weights and mem.optimizer == 2 * mem.weights
    block = m.block_matmul_params() + m.block_norm_params()
    assert mem.gathered == pytest.approx(2 * block * 2)  # two bf16 blocks gathered
    tokens = cfg.train_module.rank_microbatch_size
    per_token = m.n_layers * est.block_activation_elements(cfg) + m.d_model
    chunk = min(tokens * m.vocab_size, est.LOSS_CHUNK_ELEMENTS)  # the chunked loss's logits at a time
    loss = chunk * (2 + 4) + tokens * m.d_model * 2 + m.vocab_size * m.d_model * 4
    assert mem.activations == pytest.approx(tokens * per_token * 2 + loss)
    assert mem.overhead == GIB
    # DDP replicates: 8x the sharded state, nothing gathered.
    ddp = est.memory_estimate(resolve("llama2-271m", overrides=[
        "--launch.nproc_per_node=8", "--data_loader.global_batch_size=524288", "--train_module.dp_config.name=ddp"]))
    assert ddp.weights == pytest.approx(8 * mem.weights) and ddp.gathered == 0


def test_activation_checkpointing_and_micro_batch_shrink_activations():
    base = resolve("llama2-271m")
    full = resolve("llama2-271m", overrides=["--train_module.ac_config.mode=full"])
    every2 = resolve("llama2-271m", overrides=["--train_module.ac_config.mode=selected_blocks",
                                               "--train_module.ac_config.block_interval=2"])
    micro = base.train_module.rank_microbatch_size
    half = resolve("llama2-271m", overrides=[f"--train_module.rank_microbatch_size={micro // 2}"])
    a = {name: est.memory_estimate(cfg).activations for name, cfg in
         (("none", base), ("full", full), ("every2", every2), ("half", half))}
    assert a["full"] < a["every2"] < a["none"]
    # Per-token activations scale with the micro-batch; the chunked loss has fixed parts.
    def blocks(cfg, total):
        return total - est.loss_bytes(cfg, cfg.train_module.rank_microbatch_size, 2)

    assert blocks(half, a["half"]) == pytest.approx(blocks(base, a["none"]) / 2)
    assert a["half"] < a["none"]


def test_remedies_come_in_the_guides_order_and_each_is_a_valid_config():
    cfg = resolve("olmo2-13b")
    result = est.estimate(cfg)
    assert result.over_memory
    titles = [r.title for r in result.remedies]
    assert titles[0].startswith("micro-batch") and titles[1].startswith("AC budget")
    assert titles[-1].startswith("TP degree")
    limit = result.accelerator.memory_gib * GIB
    for remedy in result.remedies:
        overrides = []
        for path, value in remedy.changes.items():
            if isinstance(value, dict):
                overrides += [f"--{path}.{k}={json.dumps(v)}" for k, v in value.items()]
            else:
                overrides.append(f"--{path}={json.dumps(value)}")
        applied = resolve("olmo2-13b", overrides=overrides)
        assert est.memory_estimate(applied).total == pytest.approx(remedy.total_bytes)
        assert remedy.fits == (remedy.total_bytes <= limit) and remedy.total_bytes < result.memory.total


def test_sharding_remedy_offered_for_ddp():
    cfg = resolve("olmo2-7b", overrides=["--train_module.dp_config.name=ddp"])
    titles = [r.title for r in est.estimate(cfg).remedies]
    assert any(t.startswith("FSDP over 8 ranks") for t in titles)


def test_wall_time_at_default_mfu_and_steps_from_tokens():
    cfg = resolve("olmo2-1b", overrides=["--trainer.hard_stop=1000 steps"])
    result = est.estimate(cfg)
    assert result.steps_to_stop == 1000 and result.stop_label == "hard stop"
    assert result.max_duration_steps == -(-4_000_000_000_000 // cfg.tokens_per_step)
    flops = cfg.model.num_flops_per_token(cfg.dataset.sequence_length) * cfg.tokens_per_step * 1000
    peak = 8 * 989.5e12 * est.DEFAULT_MFU / 100
    assert result.mfu_source == "default" and result.wall_seconds == pytest.approx(flops / peak)
    assert est.estimate(resolve("tiny-cpu")).wall_seconds is None  # no accelerator: no guess


def test_best_mfu_is_the_best_run_median(tmp_path):
    runs = []
    for i, values in enumerate(([30.0, 31.0, 50.0], [35.0, 36.0, 37.0], [])):
        run = tmp_path / f"run{i}"
        run.mkdir()
        lines = [json.dumps({"step": s, "mfu": v}) for s, v in enumerate(values)]
        lines.append('{"step": 99, "mf')  # a line still being written
        (run / "metrics.jsonl").write_text("\n".join(lines) + "\n")
        runs.append(run)
    runs.append(tmp_path / "missing")
    assert est.best_mfu(runs) == (36.0, 2)
    result = est.estimate(resolve("olmo2-1b"), measured_mfu=(36.0, 2))
    assert result.mfu_percent == 36.0 and "2 earlier run" in result.mfu_source


def test_best_mfu_found_through_the_registry(tmp_path):
    from olmo_tui.core.runs.registry import Registry, RunRecord

    run_dir = tmp_path / "r1"
    run_dir.mkdir()
    (run_dir / "metrics.jsonl").write_text(json.dumps({"step": 1, "mfu": 42.5}) + "\n")
    registry = Registry()
    fields = RunRecord.__dataclass_fields__
    record = {"id": "r1", "name": "olmo2-1b", "backend": "local", "run_dir": str(run_dir), "preset": "olmo2-1b"}
    if "status" in fields:
        record["status"] = "succeeded"
    registry.add(RunRecord(**record))
    registry.close()
    assert est.run_dirs_for_preset("olmo2-1b") == [run_dir]
    assert est.best_mfu(est.run_dirs_for_preset("olmo2-1b")) == (42.5, 1)
    assert est.run_dirs_for_preset("tiny-cpu") == []


def test_loss_chunk_matches_the_engine():
    from engine.nn import fused_loss  # part of the repo: a failed import is a failure, not a skip
    assert est.LOSS_CHUNK_ELEMENTS == fused_loss.CHUNK_ELEMENTS


def test_memory_estimate_within_15_percent_of_measured_gpu_peaks():
    """benchmarks/results/peak_memory.json: torch's peak allocated memory measured on GPUs."""
    results = Path(__file__).resolve().parents[3] / "benchmarks" / "results" / "peak_memory.json"
    assert results.exists(), f"{results} is part of the repo (measured on GPUs): restore it"
    for case in json.loads(results.read_text())["configs"]:
        n, tokens = case["world_size"], case["seq_len"] * case["micro_batch"]
        overrides = [f"--launch.nproc_per_node={n}", f"--train_module.rank_microbatch_size={tokens}",
                     f"--data_loader.global_batch_size={tokens * n * 4}", f"--dataset.sequence_length={case['seq_len']}",
                     f"--train_module.max_sequence_length={case['seq_len']}",
                     f"--train_module.dp_config.name={case['dp']}",
                     f"--train_module.dp_config.param_dtype={case['param_dtype']}",
                     f"--train_module.z_loss_multiplier={json.dumps(case['z_loss'])}".replace('"', "")]
        if case["ac"] is None:
            overrides.append("--train_module.ac_config=null")
        mem = est.memory_estimate(resolve(case["preset"], overrides=overrides))
        allocated = (mem.total - mem.overhead) / GIB  # torch's allocated memory has no CUDA context
        assert abs(allocated - case["peak_allocated_gib"]) <= 0.15 * case["peak_allocated_gib"], case


def test_block_activations_follow_head_dim_and_gemma_norms():
    # qwen3-0.6b: d 1024, q = 16 x 128 = 2048 (wider than d), kv = 8 x 128, MLP 3072:
    # 4d + (q + 2kv) + q + 4h + QK-norm inputs (q + kv)
    assert est.block_activation_elements(resolve("qwen3-0.6b")) == (
        4 * 1024 + (2048 + 2 * 1024) + 2048 + 4 * 3072 + (2048 + 1024))
    # gemma3-1b: four norms (8d), d 1152, q = 4 x 256, kv = 1 x 256, MLP 6912
    assert est.block_activation_elements(resolve("gemma3-1b")) == (
        8 * 1152 + (1024 + 2 * 256) + 1024 + 4 * 6912 + (1024 + 256))


def test_a_mixture_shows_tokens_and_epochs_per_source_as_the_pre_flight_counts_them(tmp_path):
    from engine.data.checks import mixture_plan
    from engine.data.prepare import main_prepare
    from olmo_tui.app.widgets.estimates import render_estimates

    repo = Path(__file__).resolve().parents[3]
    assert main_prepare([str(repo / "engine" / "data" / "*.py"), "-o", str(tmp_path / "code.npy")]) == 0
    assert main_prepare([str(repo / "docs" / "CONTRACTS.md"), "-o", str(tmp_path / "docs.npy")]) == 0
    mixture = ["--dataset.kind=numpy", f"--dataset.sources.code.paths={tmp_path / 'code.npy'}",
               "--dataset.sources.code.ratio=0.8", f"--dataset.sources.docs.paths={tmp_path / 'docs.npy'}",
               "--dataset.sources.docs.ratio=0.2", "--trainer.max_duration=20 steps"]
    cfg = resolve(preset="tiny-cpu", overrides=mixture)
    quick = {p.name: p for p in est.estimate(cfg).sources}
    exact = {p.name: p for p in mixture_plan(cfg)}
    assert quick["code"].documents == exact["code"].documents == len(list((repo / "engine" / "data").glob("*.py")))
    for name in ("code", "docs"):
        assert quick[name].tokens_needed == exact[name].tokens_needed == round(20 * 16 * cfg.dataset.sequence_length
                                                                              * {"code": 0.8, "docs": 0.2}[name])
        # the quick figure holds the nominal held-out tail out; the pre-flight's starts at a document
        assert abs(quick[name].instances - exact[name].instances) <= exact[name].instances // 10
    text = render_estimates(est.estimate(cfg))
    assert f"  docs       0.2    8.2K {quick['docs'].epochs:.2f}/1\n" in text.plain
    over = [text.plain[s.start:s.end] for s in text.spans if "reverse" in str(s.style)]
    # docs (6K tokens) cannot give 8K at max_repetition 1: marked; code (78K for 33K) is not
    assert quick["docs"].problem() and not quick["code"].problem()
    assert [line.split()[0] for line in over] == ["docs"]
    missing = est.estimate(resolve(preset="tiny-cpu", overrides=[*mixture, "--dataset.sources.docs.paths=nope.npy"]))
    assert missing.sources == [] and missing.sources_error == "dataset.sources.docs.paths: file not found: nope.npy"
