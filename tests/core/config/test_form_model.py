"""The form's model without the drawing: every schema field gets a widget kind, text <-> value
round-trips for every built-in preset, issues land on the fields they name."""

from __future__ import annotations

import copy

import pytest

from engine.config import ExperimentConfig, list_presets, resolve
from olmo_tui.core.config import form_model as fm

BUILTIN = [ref.name for ref in list_presets() if ref.builtin]


def test_every_schema_field_has_a_widget_kind():
    tree = fm.schema_tree()
    leaves = fm.leaf_specs(tree)
    # Every leaf of the dumped config is a form field (unset optional sections: their switch).
    flat = _flat_paths(ExperimentConfig().model_dump(mode="json"))
    assert flat <= {spec.path for spec in tree.walk()}
    kinds = {spec.kind for spec in leaves.values()}
    assert {fm.INT, fm.FLOAT, fm.TEXT, fm.BOOL, fm.CHOICE, fm.DURATION, fm.LIST, fm.MAPPING} <= kinds
    assert leaves["train_module.optim.betas"].fixed_length == 2
    assert leaves["model.dtype"].choices == ("float32", "bfloat16", "float16")
    assert leaves["trainer.hard_stop"].kind == fm.DURATION and leaves["trainer.hard_stop"].optional
    sections = {s.path: s for s in tree.walk() if s.kind == fm.SECTION}
    assert sections["train_module.ac_config"].optional and not sections["model"].optional
    assert all(spec.description for spec in leaves.values()), "every field documents itself"


def _flat_paths(data, prefix=""):
    paths = set()
    for key, value in data.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and key not in ("env",) and value and "value" not in value:
            paths |= _flat_paths(value, path + ".")
        else:
            paths.add(path)
    return paths


@pytest.mark.parametrize("name", BUILTIN)
def test_text_round_trip_for_every_value_of_every_builtin(name):
    data = fm.config_data(resolve(name))
    leaves = fm.leaf_specs(fm.schema_tree())
    rebuilt = copy.deepcopy(data)
    for path, spec in leaves.items():
        value = fm.get_path(data, path)
        if spec.kind in (fm.BOOL, fm.DURATION, fm.LIST) or fm.get_path(data, path.rsplit(".", 1)[0]) is None:
            continue  # drawn by switches, duration and list editors (tested in the app tests)
        text = fm.format_value(spec, value)
        fm.set_path(rebuilt, path, fm.parse_text(spec, text))
    assert fm.validate_form(rebuilt, list(leaves)).config == resolve(name)


def test_unparseable_text_is_reported_on_its_field():
    data = fm.config_data(resolve("tiny-cpu"))
    paths = [s.path for s in fm.schema_tree().walk() if s.path]
    spec = fm.leaf_specs(fm.schema_tree())["model.d_model"]
    fm.set_path(data, "model.d_model", fm.parse_text(spec, "12x"))
    result = fm.validate_form(data, paths)
    assert not result.ok
    assert [i.message for i in result.by_field["model.d_model"]] == ["got '12x', expected an integer"]


def test_issue_paths_go_to_the_owning_widget():
    widgets = ["trainer.hard_stop", "trainer", "dataset.paths", "launch.beaker"]
    assert fm.owner_path("trainer.hard_stop.value", widgets) == "trainer.hard_stop"
    assert fm.owner_path("dataset.paths.0", widgets) == "dataset.paths"
    assert fm.owner_path("launch.beaker", widgets) == "launch.beaker"
    assert fm.owner_path("model.d_model", widgets) == "model.d_model"


def test_cross_field_issue_lands_on_each_field():
    data = fm.config_data(resolve("tiny-cpu"))
    fm.set_path(data, "data_loader.global_batch_size", 3000)
    paths = [s.path for s in fm.schema_tree().walk() if s.path]
    result = fm.validate_form(data, paths)
    assert result.by_field["data_loader.global_batch_size"] == result.by_field["train_module.rank_microbatch_size"]


def test_toml_mode_data_fills_back_to_the_same_form_data():
    """What the raw TOML mode writes (no nulls) reads back to the same form data."""
    tree = fm.schema_tree()
    specs = [s for s in tree.walk() if s.path]
    for name in BUILTIN:
        data = fm.config_data(resolve(name))
        again = fm.fill_defaults(fm.strip_nones(data), tree)
        assert fm.changed_paths(again, data, specs) == [], name


def test_changed_paths_marks_fields_and_section_switches():
    tree = fm.schema_tree()
    specs = [s for s in tree.walk() if s.path]
    base = fm.config_data(resolve("tiny-cpu"))
    data = copy.deepcopy(base)
    fm.set_path(data, "model.n_layers", 6)
    ac = next(s for s in specs if s.path == "train_module.ac_config")
    fm.set_path(data, "train_module.ac_config", fm.section_defaults(ac.model))
    changed = fm.changed_paths(data, base, specs)
    assert "model.n_layers" in changed and "train_module.ac_config" in changed
    assert "model" not in changed  # a section is marked only when switched on or off


def test_model_family_fields_are_form_fields_with_their_rules():
    leaves = fm.leaf_specs(fm.schema_tree())
    assert set(leaves["model.family"].choices) == {"llama", "olmo2", "olmo3", "qwen3", "gemma3"}
    for name in ("head_dim", "sliding_window", "rope_local_theta", "query_pre_attn_scalar", "final_logit_softcap"):
        assert leaves[f"model.{name}"].optional, name  # unset = the family's plain behaviour
    data = fm.config_data(resolve("qwen3-0.6b"))
    fm.set_path(data, "model.sliding_window", 512)  # qwen3 has no sliding-window layers
    paths = [s.path for s in fm.schema_tree().walk() if s.path]
    result = fm.validate_form(data, paths)
    assert result.by_field["model.sliding_window"] == result.by_field["model.family"] != []


def test_rope_scaling_is_a_form_section_and_its_errors_land_on_its_fields():
    tree = fm.schema_tree()
    sections = {s.path: s for s in tree.walk() if s.kind == fm.SECTION}
    assert not sections["model.rope_scaling"].optional  # always there, type "none" by default
    leaves = fm.leaf_specs(tree)
    assert leaves["model.rope_scaling.type"].choices == ("none", "linear", "yarn", "llama3")
    assert leaves["model.rope_scaling.truncate"].kind == fm.CHOICE  # an optional bool: true / false / unset
    data = fm.fill_defaults(fm.config_data(resolve("olmo3-7b")), tree)
    fm.set_path(data, "model.rope_scaling.type", fm.parse_text(leaves["model.rope_scaling.type"], "yarn"))
    fm.set_path(data, "model.rope_scaling.factor", fm.parse_text(leaves["model.rope_scaling.factor"], "8"))
    paths = [s.path for s in tree.walk() if s.path]
    result = fm.validate_form(data, paths)
    assert list(result.by_field) == ["model.rope_scaling.original_max_position_embeddings"]
    fm.set_path(data, "model.rope_scaling.original_max_position_embeddings", 8192)
    result = fm.validate_form(data, paths)
    assert result.ok and result.config.model.rope_scaling.scaled_context == 65536
    assert fm.strip_nones(data)["model"]["rope_scaling"] == {
        "type": "yarn", "factor": 8.0, "original_max_position_embeddings": 8192}  # what a preset file holds
