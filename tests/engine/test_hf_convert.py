"""HF <-> engine conversion against the real transformers library: tiny random Llama and OLMo-2
models are converted both ways and give the same logits (max |diff| < 1e-4, fp32).

The engine side is loaded the way the trainer loads trainer.load_path (not through the
converter's own reader), and the HF side through AutoModelForCausalLM.from_pretrained.
"""

from __future__ import annotations

import json

import pytest
import torch

pytest.importorskip("transformers")

from hf_helpers import engine_logits_like_the_trainer, hf_logits, leftovers, make_hf_model, random_ids  # noqa: E402

from engine.hf import key_map  # noqa: E402
from engine.hf.cli import main_convert  # noqa: E402
from engine.hf.engine_ckpt import read_checkpoint_config  # noqa: E402

ATOL = 1e-4  # fp32; measured differences are 0 to ~1e-6 on these models


def _convert(*args) -> int:
    return main_convert([str(a) for a in args])


@pytest.mark.parametrize("family, shard_size", [("llama", None), ("olmo2", "40KB")])
def test_round_trip_matches_logits(tmp_path, family, shard_size, capsys):
    src, engine_dir, back = tmp_path / "hf", tmp_path / "engine", tmp_path / "hf-back"
    make_hf_model(src, family, shard_size=shard_size)
    if shard_size:  # the OLMo-2 source is sharded with an index, as large checkpoints are
        assert (src / "model.safetensors.index.json").is_file()

    assert _convert("from-hf", src, engine_dir) == 0
    out = capsys.readouterr().out
    assert "validation: max |logit difference|" in out

    cfg = read_checkpoint_config(engine_dir).model
    assert (cfg.family, cfg.qk_norm, cfg.kv_heads, cfg.mlp_hidden) == (family, family == "olmo2", 2, 160)
    ids = random_ids()
    reference = hf_logits(src, ids)
    assert reference.std() > 0.5  # widely spread logits: a wrong tensor cannot hide
    ours = engine_logits_like_the_trainer(engine_dir, cfg, ids)
    assert (ours - reference).abs().max().item() < ATOL

    assert _convert("to-hf", engine_dir, back) == 0
    config = json.loads((back / "config.json").read_text())
    assert config["model_type"] == family and config["max_position_embeddings"] == 256
    assert config["eos_token_id"] == 2 and config["pad_token_id"] == 1  # kept from the source
    returned = hf_logits(back, ids)
    assert (returned - reference).abs().max().item() < ATOL
    assert leftovers(tmp_path) == []


def test_tied_embeddings_both_ways(tmp_path):
    src, engine_dir, back = tmp_path / "hf", tmp_path / "engine", tmp_path / "back"
    make_hf_model(src, "llama", tie=True, num_key_value_heads=4)
    assert _convert("from-hf", src, engine_dir) == 0
    cfg = read_checkpoint_config(engine_dir).model
    assert cfg.tie_embeddings and cfg.n_kv_heads is None
    ids = random_ids()
    reference = hf_logits(src, ids)
    assert (engine_logits_like_the_trainer(engine_dir, cfg, ids) - reference).abs().max().item() < ATOL
    assert _convert("to-hf", engine_dir, back) == 0
    from safetensors import safe_open

    with safe_open(str(back / "model.safetensors"), framework="pt") as handle:
        assert "lm_head.weight" not in handle.keys()  # tied: written once, as HF does
    assert (hf_logits(back, ids) - reference).abs().max().item() < ATOL


def test_bfloat16_export_loads_and_matches_rounded_weights(tmp_path, capsys):
    src, engine_dir, back = tmp_path / "hf", tmp_path / "engine", tmp_path / "back"
    make_hf_model(src, "olmo2")
    assert _convert("from-hf", src, engine_dir, "--no-validate") == 0
    assert "validation skipped (--no-validate)" in capsys.readouterr().out
    assert _convert("to-hf", engine_dir, back, "--dtype", "bfloat16") == 0
    from safetensors import safe_open

    with safe_open(str(back / "model.safetensors"), framework="pt") as handle:
        assert {handle.get_tensor(k).dtype for k in handle.keys()} == {torch.bfloat16}
    ids = random_ids()
    diff = (hf_logits(back, ids) - hf_logits(src, ids)).abs().max().item()
    assert 0 < diff < 1.0  # rounded to bf16: close to, but not exactly, the fp32 model
    # A bf16 HF directory converts in too (upcast exactly to the engine's fp32 master weights).
    again = tmp_path / "engine-from-bf16"
    assert _convert("from-hf", back, again) == 0
    ours = engine_logits_like_the_trainer(again, read_checkpoint_config(again).model, ids)
    assert (ours - hf_logits(back, ids)).abs().max().item() < ATOL


def test_validation_catches_a_wrong_mapping(tmp_path, monkeypatch, capsys):
    """Llama's two block norms swapped (the classic mistake: HF's post_attention_layernorm is
    the engine's MLP norm): the logit check fails and nothing is written."""
    src, dst = tmp_path / "hf", tmp_path / "engine"
    make_hf_model(src, "llama")
    norms = key_map._BLOCK_NORMS["llama"]
    monkeypatch.setitem(key_map._BLOCK_NORMS, "llama", {"attention_norm.weight": norms["mlp_norm.weight"],
                                                        "mlp_norm.weight": norms["attention_norm.weight"]})
    assert _convert("from-hf", src, dst) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "validation failed" in err[0] and "nothing was written" in err[0]
    assert not dst.exists() and leftovers(tmp_path) == []


def _word_tokenizer(folder, size: int) -> None:
    from tokenizers import Tokenizer, pre_tokenizers
    from tokenizers.models import WordLevel

    words = ["<unk>", "<pad>", "</s>", *(f"w{i}" for i in range(size - 3))]
    tokenizer = Tokenizer(WordLevel(vocab={w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.save(str(folder / "tokenizer.json"))
    (folder / "tokenizer_config.json").write_text(json.dumps(
        {"tokenizer_class": "PreTrainedTokenizerFast", "eos_token": "</s>", "pad_token": "<pad>", "unk_token": "<unk>"}))


def test_tokenizer_travels_with_the_model(tmp_path):
    """from-hf copies the tokenizer and writes a fine-tuning config that uses it; to-hf of that
    checkpoint (or of a run fine-tuned from it) ships the tokenizer files again."""
    from transformers import AutoTokenizer

    from engine.config import resolve

    src, engine_dir, back = tmp_path / "hf", tmp_path / "engine", tmp_path / "back"
    make_hf_model(src, "llama", vocab_size=512)
    _word_tokenizer(src, 430)
    assert _convert("from-hf", src, engine_dir, "--no-validate") == 0
    cfg = resolve(config_file=str(engine_dir / "config.toml"))
    tok = cfg.dataset.tokenizer
    assert (tok.kind, tok.vocab_size, tok.eos_token_id, tok.pad_token_id) == ("hf", 430, 2, 1)
    assert tok.path == str(engine_dir / "tokenizer.json") and cfg.dataset.kind == "numpy"
    assert cfg.model.vocab_size == 512 and cfg.trainer.load_path == str(engine_dir)

    assert _convert("to-hf", engine_dir, back, "--no-validate") == 0
    text = "w1 w7 w426 unknown"  # ids: 3 specials first, then w0 = 3 ... w426 = 429
    assert AutoTokenizer.from_pretrained(str(back))(text)["input_ids"] == \
        AutoTokenizer.from_pretrained(str(src))(text)["input_ids"] == [4, 10, 429, 0]
