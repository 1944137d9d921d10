"""Tiny random HF Llama / OLMo-2 / OLMo-3 / Qwen3 / Gemma-3 / OLMoE models built with the real transformers library (no download),
and the two reference computations the HF tests compare against."""

from __future__ import annotations

from pathlib import Path

import torch

SMALL = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
             intermediate_size=160, vocab_size=384, max_position_embeddings=256)


def make_hf_model(path: Path, family: str = "llama", *, seed: int = 0, tie: bool = False,
                  shard_size: str | None = None, **overrides):
    """Save a random HF model to `path` and return it (float32, eval mode).

    HF initialises every RMSNorm weight to 1, which would hide a swapped norm in a conversion;
    they are randomised here, as are all other weights (std 0.1, larger than HF's 0.02, so the
    logits spread widely and a wrong mapping cannot hide in the noise)."""
    import transformers as tf

    config_cls, model_cls = {"llama": (tf.LlamaConfig, tf.LlamaForCausalLM),
                             "olmo2": (tf.Olmo2Config, tf.Olmo2ForCausalLM),
                             "olmo3": (tf.Olmo3Config, tf.Olmo3ForCausalLM),
                             "qwen3": (tf.Qwen3Config, tf.Qwen3ForCausalLM),
                             "gemma3": (tf.Gemma3TextConfig, tf.Gemma3ForCausalLM),
                             "olmoe": (tf.OlmoeConfig, tf.OlmoeForCausalLM)}[family]
    kwargs = {**SMALL, "tie_word_embeddings": tie, "bos_token_id": None, "eos_token_id": 2,
              "pad_token_id": 1, "rope_theta": 500_000.0 if family in ("olmo2", "olmo3") else 10_000.0, **overrides}
    torch.manual_seed(seed)
    model = model_cls(config_cls(**kwargs)).float().eval()
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "norm" in name:
                param.uniform_(0.5, 1.5)
            else:
                param.normal_(0.0, 0.1)
    extra = {"max_shard_size": shard_size} if shard_size else {}
    model.save_pretrained(str(path), **extra)
    return model


def hf_logits(model_dir: Path, input_ids: torch.Tensor) -> torch.Tensor:
    from engine.hf.validate import load_hf_model

    with torch.no_grad():
        return load_hf_model(model_dir)(input_ids=input_ids).logits.float()


def engine_logits_like_the_trainer(checkpoint_dir: Path, model_cfg, input_ids: torch.Tensor) -> torch.Tensor:
    """Load weights the way `trainer.load_path` does (engine.train.build.restore_weights): a fresh
    model, its DCP model state dict, checkpoint.load_model_and_optim, set_model_state_dict."""
    from torch.distributed.checkpoint.state_dict import get_model_state_dict, set_model_state_dict

    from engine import checkpoint
    from engine.nn.transformer import build_model, materialize

    model = materialize(build_model(model_cfg), torch.device("cpu"), seed=123)
    state = {"model": get_model_state_dict(model)}
    checkpoint.load_model_and_optim(checkpoint.resolve_load_path(checkpoint_dir), state)
    set_model_state_dict(model, state["model"])
    with torch.no_grad():
        return model.eval()(input_ids).float()


def random_ids(vocab: int = SMALL["vocab_size"], shape=(2, 24), seed: int = 1) -> torch.Tensor:
    return torch.randint(0, vocab, shape, generator=torch.Generator().manual_seed(seed))


def leftovers(folder: Path) -> list:
    """Hidden staging dirs a failed or finished conversion might have left."""
    return sorted(p.name for p in Path(folder).iterdir() if ".tmp-" in p.name)
