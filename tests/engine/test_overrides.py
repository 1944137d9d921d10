"""Dotted overrides: syntax, type errors, unknown keys, optional sections."""

import pytest

from engine.config import ConfigError, ExperimentConfig, apply_overrides, load_experiment, resolve
from engine.config.base import DurationUnit


def apply(*overrides, data=None):
    return load_experiment(apply_overrides(data or {}, overrides, ExperimentConfig))


def test_three_syntaxes_and_dash_underscore():
    cfg = apply("--trainer.no-checkpoints", "data_loader.seed=7", "--train_module.optim.lr=1e-3")
    assert cfg.trainer.no_checkpoints is True
    assert cfg.data_loader.seed == 7
    assert cfg.train_module.optim.lr == pytest.approx(1e-3) and isinstance(cfg.train_module.optim.lr, float)


def test_yaml_values_mapping_list_and_text_durations():
    cfg = apply("--trainer.hard_stop={value: 100, unit: steps}", "--dataset.paths=[a.npy, b.npy]",
                "--dataset.kind=numpy", "--trainer.max_duration=2e9 tokens")
    assert cfg.trainer.hard_stop.value == 100 and cfg.trainer.hard_stop.unit == DurationUnit.steps
    assert cfg.dataset.paths == ["a.npy", "b.npy"]
    assert cfg.trainer.max_duration.value == 2_000_000_000
    assert cfg.trainer.max_duration.unit == DurationUnit.tokens


def test_subfield_of_unset_optional_section_creates_it_with_defaults():
    cfg = apply("--train_module.ac_config.mode=selected_blocks", "--train_module.ac_config.block_interval=2",
                "--train_module.dp_config.param_dtype=bfloat16")
    assert cfg.train_module.ac_config.mode == "selected_blocks"
    assert cfg.train_module.dp_config.name == "fsdp"  # the section's default
    assert cfg.train_module.dp_config.param_dtype.value == "bfloat16"


def test_unknown_key_names_full_path_and_suggests():
    with pytest.raises(ConfigError) as info:
        apply("--trainer.hard_stop.valu=3")
    (issue,) = info.value.issues
    assert issue.paths == ("trainer.hard_stop.valu",)
    assert "'value'" in issue.message


def test_unknown_top_level_section():
    with pytest.raises(ConfigError) as info:
        apply("--trainr.max_duration=3")
    assert "trainr.max_duration" in str(info.value) and "'trainer'" in str(info.value)


def test_wrong_type_names_field_value_and_type():
    with pytest.raises(ConfigError) as info:
        apply("--data_loader.num_workers=abc")
    (issue,) = info.value.issues
    assert issue.paths == ("data_loader.num_workers",)
    assert "'abc'" in issue.message and "integer" in issue.message


def test_enum_error_lists_allowed_values():
    with pytest.raises(ConfigError) as info:
        apply("--model.family=gpt")
    assert "llama" in str(info.value) and "olmo2" in str(info.value)


def test_value_is_not_a_section():
    with pytest.raises(ConfigError) as info:
        apply("--data_loader.seed.x=1")
    assert "data_loader.seed" in str(info.value) and "not a section" in str(info.value)


def test_list_index_and_string_field_keeps_text():
    cfg = apply("--run_name=123", "--train_module.optim.group_overrides.0.params=[embeddings.weight]",
                "--train_module.optim.group_overrides.0.weight_decay=0")
    assert cfg.run_name == "123"
    assert cfg.train_module.optim.group_overrides[0].weight_decay == 0.0


def test_set_back_to_none():
    cfg = resolve("llama2-271m", overrides=["--train_module.dp_config=null", "--trainer.hard_stop=5 steps"])
    assert cfg.train_module.dp_config is None
    assert cfg.trainer.hard_stop.value == 5


def test_cross_field_rule_names_both_fields():
    with pytest.raises(ConfigError) as info:
        resolve("tiny-cpu", overrides=["--data_loader.global_batch_size=3000"])
    paths = {p for issue in info.value.issues for p in issue.paths}
    assert {"data_loader.global_batch_size", "train_module.rank_microbatch_size"} <= paths


@pytest.mark.parametrize(
    "override, field",
    [
        ("--train_module.rank_microbatch_size=1000", "train_module.rank_microbatch_size"),
        ("--trainer.callbacks.checkpointer.ephemeral_save_interval=100", "trainer.callbacks.checkpointer.ephemeral_save_interval"),
        ("--train_module.ac_config={mode: budget, activation_memory_budget: 0.5}", "train_module.ac_config.mode"),
        ("--train_module.tp_config.degree=3", "train_module.tp_config.degree"),
        ("--dataset.tokenizer.vocab_size=1000", "model.vocab_size"),
    ],
)
def test_cross_field_rules(override, field):
    with pytest.raises(ConfigError) as info:
        resolve("tiny-cpu", overrides=[override])
    assert field in {p for issue in info.value.issues for p in issue.paths}
