"""OLMo-3, Qwen3 and Gemma-3: presets carry the released models' numbers (parameter counts equal
those of the real transformers classes built from the released config.json values), FLOPs per
token agree with torch's own FLOP counter, sliding-window attention is exact, and the config
rules between the new fields are one-line errors naming the fields."""

from __future__ import annotations

import math

import pytest
import torch

from engine.config import ModelConfig, resolve, validate_experiment
from engine.hf.config_map import model_config_from_hf
from engine.nn import sliding_window
from engine.nn.transformer import build_model, materialize

# The architecture keys of each release's config.json on the HF hub (allenai/Olmo-3-1025-7B,
# allenai/Olmo-3-1125-32B, Qwen/Qwen3-0.6B, Qwen/Qwen3-8B, google/gemma-3-1b-pt).
OLMO3 = dict(model_type="olmo3", vocab_size=100278, rms_norm_eps=1e-6, rope_theta=500000.0, sliding_window=4096,
             tie_word_embeddings=False)
QWEN3 = dict(model_type="qwen3", vocab_size=151936, rms_norm_eps=1e-6, rope_theta=1000000.0, head_dim=128)
RELEASED = {
    "olmo3-7b": dict(OLMO3, hidden_size=4096, intermediate_size=11008, num_hidden_layers=32,
                     num_attention_heads=32, num_key_value_heads=32),
    "olmo3-32b": dict(OLMO3, hidden_size=5120, intermediate_size=27648, num_hidden_layers=64,
                      num_attention_heads=40, num_key_value_heads=8),
    "qwen3-0.6b": dict(QWEN3, hidden_size=1024, intermediate_size=3072, num_hidden_layers=28,
                       num_attention_heads=16, num_key_value_heads=8, tie_word_embeddings=True),
    "qwen3-8b": dict(QWEN3, hidden_size=4096, intermediate_size=12288, num_hidden_layers=36,
                     num_attention_heads=32, num_key_value_heads=8, tie_word_embeddings=False),
    "gemma3-1b": dict(model_type="gemma3_text", hidden_size=1152, intermediate_size=6912, num_hidden_layers=26,
                      num_attention_heads=4, num_key_value_heads=1, head_dim=256, vocab_size=262144,
                      sliding_window=512, sliding_window_pattern=6, query_pre_attn_scalar=256,
                      rope_theta=1000000.0, rope_local_base_freq=10000.0, rms_norm_eps=1e-6,
                      hidden_activation="gelu_pytorch_tanh", tie_word_embeddings=True),
    # allenai/OLMoE-1B-7B-0924
    "olmoe-1b-7b": dict(model_type="olmoe", hidden_size=2048, intermediate_size=1024, num_hidden_layers=16,
                        num_attention_heads=16, num_key_value_heads=16, vocab_size=50304, num_experts=64,
                        num_experts_per_tok=8, norm_topk_prob=False, rope_theta=10000.0, rms_norm_eps=1e-5,
                        router_aux_loss_coef=0.01, clip_qkv=None, tie_word_embeddings=False),
}


def _hf_param_count(released: dict) -> int:
    transformers = pytest.importorskip("transformers")
    kwargs = {k: v for k, v in released.items() if k != "model_type"}
    config = transformers.AutoConfig.for_model(released["model_type"], **kwargs)
    with torch.device("meta"):  # no memory: shapes only
        model = transformers.AutoModelForCausalLM.from_config(config)
    return sum(p.numel() for p in model.parameters())  # a tied head is counted once


@pytest.mark.parametrize("preset", list(RELEASED))
def test_preset_parameter_count_equals_the_released_transformers_model(preset):
    ours = resolve(preset).model
    hf_count = _hf_param_count(RELEASED[preset])
    assert ours.num_params() == hf_count
    assert build_model(ours, "meta").num_params() == hf_count
    # and the preset's architecture is what from-hf makes of the released config.json
    mapped = model_config_from_hf(RELEASED[preset])
    fields = ("family", "d_model", "n_layers", "n_heads", "kv_heads", "head_size", "mlp_hidden", "vocab_size",
              "rope_theta", "rope_local_theta", "sliding_window", "full_attention_interval", "qk_norm",
              "tie_embeddings", "norm_eps", "query_pre_attn_scalar", "moe")
    assert [getattr(mapped, f) for f in fields] == [getattr(ours, f) for f in fields]


TINY = {
    "olmo3": dict(family="olmo3", qk_norm=True, sliding_window=16, full_attention_interval=2),
    "qwen3": dict(family="qwen3", qk_norm=True, head_dim=24, tie_embeddings=True),
    "gemma3": dict(family="gemma3", qk_norm=True, head_dim=24, sliding_window=16, full_attention_interval=3,
                   rope_local_theta=1e4, query_pre_attn_scalar=20),
}


def _tiny(family: str, **extra) -> ModelConfig:
    return ModelConfig(d_model=64, n_layers=3, n_heads=4, n_kv_heads=2, vocab_size=128, **{**TINY[family], **extra})


@pytest.mark.parametrize("family", list(TINY))
def test_flops_per_token_match_torch_flop_counter(family):
    """Forward + backward FLOPs counted by torch (matmuls and SDPA, full T x T scores) equal
    num_flops_per_token, engine and config alike, with head_dim apart from d / heads."""
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode

    seq = 16  # == the window: every layer takes SDPA's causal path
    cfg = _tiny(family)
    model = materialize(build_model(cfg), torch.device("cpu"), seed=0)
    ids = torch.randint(0, 128, (2, seq), generator=torch.Generator().manual_seed(0))
    # The math kernel runs attention as plain matmuls over all T x T scores, which the counter sees.
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        model(ids).float().sum().backward()
    per_token = counter.get_total_flops() / ids.numel()
    assert per_token == cfg.num_flops_per_token(seq) == model.num_flops_per_token(seq)


def test_sliding_window_layers_count_only_the_window():
    cfg = resolve("gemma3-1b").model  # 26 layers, every 6th global: 4 global, 22 local of 512
    seq = 4096
    full = cfg.model_copy(update={"sliding_window": None, "rope_local_theta": None})
    saved = 12 * cfg.q_dim * 22 * (seq - 512)
    assert full.num_flops_per_token(seq) - cfg.num_flops_per_token(seq) == saved
    assert cfg.num_flops_per_token(256) == full.num_flops_per_token(256)  # shorter than the window
    assert build_model(cfg, "meta").num_flops_per_token(seq) == cfg.num_flops_per_token(seq)
    olmo = resolve("olmo3-7b").model  # 3 of 4 layers windowed at 4096, trained at 8192
    assert [olmo.is_sliding_layer(i) for i in range(8)] == [True, True, True, False] * 2


def _reference_attention(q, k, v, window, scale):
    """Scores computed one by one in float64 over the allowed keys only."""
    B, H, T, hd = q.shape
    rep = H // k.shape[1]
    out = torch.zeros(B, H, T, hd, dtype=torch.float64)
    for i in range(T):
        lo = max(0, i - window + 1)
        for h in range(H):
            s = (q[:, h, i:i + 1].double() @ k[:, h // rep, lo:i + 1].double().transpose(-1, -2)) * scale
            out[:, h, i] = (s.softmax(-1) @ v[:, h // rep, lo:i + 1].double()).squeeze(1)
    return out


@pytest.mark.parametrize("window", [5, 40])
def test_sliding_window_attention_matches_a_direct_computation(window):
    gen = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, n, 24, 8, generator=gen) for n in (4, 2, 2))  # GQA 4 / 2
    mask = sliding_window.window_mask(24, window, torch.device("cpu"))
    assert (mask is None) == (window >= 24)  # a window past the sequence is plain causal attention
    out = sliding_window.attend(q, k, v, mask, scale=0.3)
    ref = _reference_attention(q, k, v, window, 0.3)
    assert (out.double() - ref).abs().max().item() < 1e-5


def test_window_changes_the_model_output_only_past_the_window():
    """Same weights, same layer pattern and RoPE bases; a window of 16 vs one longer than the
    sequence: positions inside the first window agree exactly, later ones do not."""
    cfg = _tiny("gemma3")
    ids = torch.randint(0, 128, (1, 40), generator=torch.Generator().manual_seed(0))
    windowed = materialize(build_model(cfg), torch.device("cpu"), seed=0).eval()
    wide = materialize(build_model(cfg.model_copy(update={"sliding_window": 1000})), torch.device("cpu"), seed=0)
    with torch.no_grad():
        a, b = windowed(ids), wide.eval()(ids)
    assert (a[:, :16] - b[:, :16]).abs().max().item() < 1e-5
    assert (a[:, 20:] - b[:, 20:]).abs().max().item() > 1e-2


def _issues(model: dict, **sections):
    data = {"model": model, **sections}
    cfg, issues = validate_experiment(data)
    assert cfg is None
    return {issue.paths: issue.message for issue in issues}


@pytest.mark.parametrize("model, paths", [
    ({"family": "qwen3", "sliding_window": 128}, ("model.sliding_window", "model.family")),
    ({"family": "olmo3", "rope_local_theta": 1e4}, ("model.rope_local_theta", "model.sliding_window")),
    ({"family": "llama", "query_pre_attn_scalar": 64}, ("model.query_pre_attn_scalar", "model.family")),
    ({"family": "olmo2", "final_logit_softcap": 30}, ("model.final_logit_softcap", "model.family")),
])
def test_cross_field_rules_name_both_fields(model, paths):
    issues = _issues(model)
    assert list(issues) == [paths]
    assert "\n" not in issues[paths] and paths[0].split(".")[-1] in issues[paths]


def test_tensor_parallel_with_tied_embeddings_is_refused_up_front():
    issues = _issues({"family": "qwen3", "tie_embeddings": True},
                     train_module={"tp_config": {"degree": 2}}, launch={"nproc_per_node": 2})
    assert ("train_module.tp_config.degree", "model.tie_embeddings") in issues


def test_head_dim_frees_d_model_from_n_heads():
    cfg = ModelConfig(family="qwen3", d_model=100, n_heads=4, head_dim=32)  # 100 / 4 is not even
    assert (cfg.head_size, cfg.q_dim) == (32, 128)
    with pytest.raises(ValueError, match="head_dim"):
        ModelConfig(family="qwen3", d_model=100, n_heads=3)


def test_cli_reports_a_family_rule_in_one_line(capsys):
    from olmo_tui.cli.main import main

    code = main(["--preset", "qwen3-0.6b", "--model.sliding_window=512", "--dry-run"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and "model.sliding_window" in err[0] and "olmo3, gemma3" in err[0]


def test_gemma_scale_and_norm_init():
    cfg = _tiny("gemma3")
    model = materialize(build_model(cfg), torch.device("cpu"), seed=0)
    assert float(model.blocks["0"].attention_post_norm.weight.detach().abs().max()) == 0.0  # (1 + 0) = identity scale
    assert model.blocks["0"].attention.scale == pytest.approx(1 / math.sqrt(20))
    assert model.blocks["0"].attention.window == 16 and model.blocks["2"].attention.window is None
