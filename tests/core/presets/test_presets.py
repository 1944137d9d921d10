"""Built-in presets load, carry the public models' numbers, and user presets round-trip."""

import pytest
import tomlkit

from engine.config import ConfigError, list_presets, resolve
from engine.config.presets import user_dir
from olmo_tui.core.presets.preset_store import PresetExists, save_user_preset

BUILTIN = [ref.name for ref in list_presets() if ref.builtin]

# Public parameter counts (HF configs / papers), within rounding.
PUBLIC_PARAMS = {
    "olmo2-1b": 1.485e9, "olmo2-7b": 7.30e9, "olmo2-13b": 13.72e9, "olmo2-32b": 32.23e9,
    "llama3-8b": 8.03e9, "llama2-70b": 68.98e9, "llama2-271m": 308.6e6,
}


def test_required_presets_ship():
    assert {"tiny-cpu", "llama2-271m", "olmo2-1b", "olmo2-7b", "olmo2-13b", "olmo2-32b", "llama3-8b",
            "llama2-70b"} <= set(BUILTIN)


@pytest.mark.parametrize("name", BUILTIN)
def test_every_builtin_preset_is_valid(name):
    cfg = resolve(name)
    assert cfg.model.num_params() > 0


@pytest.mark.parametrize("name, params", sorted(PUBLIC_PARAMS.items()))
def test_public_parameter_counts(name, params):
    assert resolve(name).model.num_params() == pytest.approx(params, rel=2e-3)


def test_olmo2_1b_matches_olmo_core_olmo2_1B_v2():
    m = resolve("olmo2-1b").model
    assert (m.n_layers, m.d_model, m.n_heads, m.mlp_hidden, m.vocab_size) == (16, 2048, 16, 8192, 100352)
    assert m.family == "olmo2" and m.qk_norm and m.rope_theta == 500_000


def test_llama2_271m_matches_the_guide():
    cfg = resolve("llama2-271m")
    tm = cfg.train_module
    assert cfg.dataset.sequence_length == 1024
    assert cfg.data_loader.global_batch_size == 256 * 1024
    assert tm.rank_microbatch_size == 16 * 1024
    assert tm.dp_config.name == "fsdp" and tm.dp_config.param_dtype.value == "bfloat16"
    assert tm.dp_config.reduce_dtype.value == "float32"
    assert tm.compile_model and tm.optim.lr == 1e-3 and tm.max_grad_norm == 1.0
    assert tm.optim.group_overrides[0].params == ["embeddings.weight"]
    assert tm.optim.group_overrides[0].weight_decay == 0.0
    assert tm.scheduler.name == "cosine" and tm.scheduler.warmup_steps == 100
    ckpt = cfg.trainer.callbacks.checkpointer
    assert (ckpt.save_interval, ckpt.ephemeral_save_interval) == (1000, 100)
    assert cfg.trainer.callbacks.lm_evaluator.eval_interval == 250
    assert cfg.trainer.callbacks.downstream_evaluator.enabled
    assert cfg.trainer.callbacks.downstream_evaluator.eval_interval == 250


def test_extends_inherits_and_overrides():
    cfg = resolve("olmo2-7b")
    assert cfg.model.family == "olmo2" and cfg.model.d_model == 4096  # base + own


def test_user_preset_extends_builtin_and_shadows(isolated_xdg):
    user_dir().mkdir(parents=True)
    (user_dir() / "mine.toml").write_text('extends = "tiny-cpu"\n[model]\nn_layers = 2\n')
    cfg = resolve("mine")
    assert cfg.model.n_layers == 2 and cfg.model.d_model == resolve("tiny-cpu").model.d_model


def test_extends_cycle_is_a_clear_error(isolated_xdg):
    user_dir().mkdir(parents=True)
    (user_dir() / "a.toml").write_text('extends = "b"\n')
    (user_dir() / "b.toml").write_text('extends = "a"\n')
    with pytest.raises(ConfigError, match="cycle"):
        resolve("a")


@pytest.mark.parametrize("bad", ["../etc/passwd", "a/b", ".hidden", "x" * 80, "", "a..b"])
def test_preset_names_cannot_escape(bad):
    with pytest.raises(ConfigError):
        save_user_preset(bad, {"model.n_layers": 2})


def test_save_keeps_comments_and_order():
    source = next(ref for ref in list_presets() if ref.name == "tiny-cpu")
    path = save_user_preset("tiny-deeper", {"model.n_layers": 6, "trainer.max_duration.value": 50},
                            source=source)
    text = path.read_text()
    original = source.path.read_text()
    for line in original.splitlines():
        if line.startswith("#"):
            assert line in text  # every comment line survives
    assert "vocab_size = 384  # byte tokenizer's 258 ids" in text  # inline comments too
    doc = tomlkit.parse(text)
    assert doc["model"]["n_layers"] == 6
    assert list(doc.keys()) == list(tomlkit.parse(original).keys())  # same order
    cfg = resolve("tiny-deeper")
    assert cfg.model.n_layers == 6 and cfg.trainer.max_duration.value == 50


def test_save_refuses_to_replace_builtin_without_confirmation():
    with pytest.raises(PresetExists):
        save_user_preset("tiny-cpu", {"model.n_layers": 2})
    path = save_user_preset("tiny-cpu", {"model.n_layers": 2}, overwrite=True)
    assert path.parent == user_dir()
    assert resolve("tiny-cpu").model.n_layers == 2  # the user's copy shadows the built-in


def test_broken_toml_is_a_clear_error(isolated_xdg):
    user_dir().mkdir(parents=True)
    (user_dir() / "broken.toml").write_text("[model\nd_model = 3\n")
    with pytest.raises(ConfigError, match="invalid TOML"):
        resolve("broken")
