"""The config editor driven like a user would (Pilot, real app, real presets on disk)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from textual.widgets import Static, Switch

from engine.config import resolve
from olmo_tui.app.screens.dialogs import ConfirmDialog, SaveDialog, TextDialog
from olmo_tui.app.screens.editor import EditorScreen

from pilot_helpers import app, field_error, open_editor, quiet_terminal, type_into  # noqa: F401 (fixtures)

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def dialog_text(app) -> str:
    assert isinstance(app.screen, TextDialog), app.screen
    return str(app.screen.query_one(".dialog-text", Static).render())


def summary(screen: EditorScreen) -> str:
    return str(screen.query_one("#form-summary", Static).render())


async def test_invalid_value_shows_error_blocks_launch_and_fix_clears_it(app):
    async with app.run_test(size=(100, 32)) as pilot:
        editor = await open_editor(pilot, "tiny-cpu")
        await type_into(pilot, editor, "model.d_model", "12x", keys=True)
        assert "got '12x', expected an integer" in field_error(editor, "model.d_model")
        assert "model.d_model" in summary(editor) and "launch blocked" in summary(editor)

        await pilot.press("ctrl+l")
        await pilot.pause()
        assert app.last_launch is None and app.screen is editor  # launch blocked
        editor.query_one("#launch-button").focus()
        await pilot.press("enter")
        await pilot.pause()
        assert app.last_launch is None and app.screen is editor  # the button too

        await type_into(pilot, editor, "model.d_model", "256", keys=True)
        assert field_error(editor, "model.d_model") == ""
        assert "valid config" in summary(editor)
        await pilot.press("ctrl+l")
        await pilot.pause()
        assert app.last_launch is not None and app.last_launch.cfg.model.d_model == 256
        assert app.last_launch.overrides == ["--model.d_model=256"]
        text = dialog_text(app)
        assert "olmo-tui --preset tiny-cpu --model.d_model=256" in text
        assert "torch.distributed.run --standalone --nproc-per-node 1 -m engine tiny-cpu" in text


async def test_cross_field_error_shows_on_both_fields(app):
    async with app.run_test(size=(100, 32)) as pilot:
        editor = await open_editor(pilot, "tiny-cpu")
        await type_into(pilot, editor, "data_loader.global_batch_size", "3000")
        message = "global batch (3000 tokens) must be divisible by micro-batch (1024)"
        assert message in field_error(editor, "data_loader.global_batch_size")
        assert message in field_error(editor, "train_module.rank_microbatch_size")
        assert "data_loader.global_batch_size, train_module.rank_microbatch_size" in summary(editor)
        assert editor.config is None
        # Fixing the other field of the pair clears both.
        await type_into(pilot, editor, "train_module.rank_microbatch_size", "1000")
        assert "multiple of the sequence length" in field_error(editor, "train_module.rank_microbatch_size")
        await type_into(pilot, editor, "data_loader.global_batch_size", "2048")
        await type_into(pilot, editor, "train_module.rank_microbatch_size", "512")
        assert field_error(editor, "data_loader.global_batch_size") == ""
        assert field_error(editor, "train_module.rank_microbatch_size") == ""
        assert editor.config is not None and editor.config.train_module.rank_microbatch_size == 512


async def test_diff_view_lists_exactly_the_edited_fields_and_undo_drops_one(app):
    async with app.run_test(size=(100, 32)) as pilot:
        editor = await open_editor(pilot, "tiny-cpu")
        await type_into(pilot, editor, "model.n_layers", "6")
        await type_into(pilot, editor, "train_module.optim.lr", "1e-3")
        await editor.form.focus_field("model.qk_norm")
        await pilot.press("space")  # the Switch
        await type_into(pilot, editor, "trainer.hard_stop", "50")  # optional Duration: value
        await pilot.pause()
        assert sorted(editor.changed()) == sorted(
            ["model.n_layers", "train_module.optim.lr", "model.qk_norm", "trainer.hard_stop"])
        await pilot.press("ctrl+o")
        await pilot.pause()
        lines = [line for line in dialog_text(app).splitlines() if line.startswith("--")]
        assert sorted(lines) == sorted([
            "--model.n_layers=6", "--train_module.optim.lr=0.001", "--model.qk_norm=true",
            "--trainer.hard_stop.value=50", "--trainer.hard_stop.unit=steps",
        ])
        await pilot.press("escape")
        # The overrides reproduce the edited config through the headless path.
        assert resolve("tiny-cpu", overrides=editor.overrides()) == editor.config
        # Undo the focused field (hard_stop) only.
        await pilot.press("ctrl+z")
        await pilot.pause()
        assert "trainer.hard_stop" not in editor.changed()
        assert editor.config.trainer.hard_stop is None
        assert len(editor.overrides()) == 3
        marked = editor.form.rows["model.n_layers"]
        assert marked.has_class("-changed") and "●" in str(marked.query_one(".field-name").render())


async def test_save_writes_toml_with_original_comments(app):
    async with app.run_test(size=(100, 32)) as pilot:
        editor = await open_editor(pilot, "tiny-cpu")
        await type_into(pilot, editor, "model.n_layers", "6")
        await type_into(pilot, editor, "train_module.optim.lr", "0.002")
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert isinstance(app.screen, SaveDialog)
        name_box = app.screen.query_one("#save-name")
        name_box.value = "../escape"
        await pilot.press("enter")
        await pilot.pause()
        assert "invalid preset name" in str(app.screen.query_one("#save-error").render())
        name_box.value = "my-tiny"
        await pilot.press("enter")
        await pilot.pause()
        saved = Path(os.environ["XDG_CONFIG_HOME"]) / "olmo-tui" / "presets" / "my-tiny.toml"
        text = saved.read_text()
        source = (Path(__file__).resolve().parents[2] / "presets" / "tiny-cpu.toml").read_text()
        # Every comment of the source preset survives, in order.
        comments = [line.split("#", 1)[1] for line in source.splitlines() if "#" in line]
        kept = [line.split("#", 1)[1] for line in text.splitlines() if "#" in line]
        assert comments and kept == comments
        data = tomllib.loads(text)
        assert data["model"]["n_layers"] == 6 and data["train_module"]["optim"]["lr"] == 0.002
        assert resolve("my-tiny") == editor.config
        assert not list(saved.parent.glob(".*.tmp"))  # no temp file left behind
        # The browser lists it, selected.
        assert app.get_screen("presets").selected_name == "my-tiny"


async def test_saving_over_a_builtin_asks_first(app):
    async with app.run_test(size=(100, 32)) as pilot:
        editor = await open_editor(pilot, "tiny-cpu")
        await type_into(pilot, editor, "model.n_layers", "2")
        await pilot.press("ctrl+s")
        await pilot.pause()
        app.screen.query_one("#save-name").value = "tiny-cpu"
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmDialog) and "built-in" in app.screen.question
        user_file = Path(os.environ["XDG_CONFIG_HOME"]) / "olmo-tui" / "presets" / "tiny-cpu.toml"
        await pilot.press("n")
        await pilot.pause()
        assert not user_file.exists() and app.screen is editor
        await pilot.press("ctrl+s")
        await pilot.pause()
        app.screen.query_one("#save-name").value = "tiny-cpu"
        await pilot.press("enter")
        await pilot.pause()
        await pilot.press("y")
        await pilot.pause()
        assert tomllib.loads(user_file.read_text())["model"]["n_layers"] == 2


async def test_raw_toml_mode_round_trips_with_the_form(app):
    async with app.run_test(size=(100, 32)) as pilot:
        editor = await open_editor(pilot, "tiny-cpu")
        before = editor.config
        await pilot.press("ctrl+t")
        await pilot.pause()
        area = editor.query_one("#toml")
        assert tomllib.loads(area.text)["model"]["d_model"] == 128
        await pilot.press("ctrl+t")  # back without edits: nothing changed
        await pilot.pause()
        assert editor.config == before and editor.changed() == []
        await pilot.press("ctrl+t")
        await pilot.pause()
        area.text = area.text.replace("n_layers = 4", "n_layers = 6")
        await pilot.press("ctrl+t")
        await pilot.pause()
        assert editor.config.model.n_layers == 6
        assert editor.form.rows["model.n_layers"].query_one("Input").value == "6"
        assert editor.overrides() == ["--model.n_layers=6"]
        # Broken TOML keeps the text mode and the form's state.
        await pilot.press("ctrl+t")
        await pilot.pause()
        area.text = "[model\n"
        await pilot.press("ctrl+t")
        await pilot.pause()
        assert editor.query_one("ContentSwitcher").current == "toml"
        assert editor.config.model.n_layers == 6


async def test_optional_section_switch_and_estimates_follow(app):
    async with app.run_test(size=(100, 32)) as pilot:
        editor = await open_editor(pilot, "llama2-271m")
        activations = editor.last_estimates.memory.activations
        await editor.form.focus_field("train_module.ac_config")
        await pilot.pause()
        toggle = editor.form.toggles["train_module.ac_config"]
        toggle.query_one(Switch).value = True
        await pilot.pause()
        assert editor.config.train_module.ac_config.mode == "full"
        assert editor.overrides() == ["--train_module.ac_config.mode=full"]
        assert editor.last_estimates.memory.activations < activations / 2
        toggle.query_one(Switch).value = False
        await pilot.pause()
        assert editor.config.train_module.ac_config is None and editor.overrides() == []


async def test_memory_remedy_applies_with_one_key(app):
    async with app.run_test(size=(120, 40)) as pilot:
        editor = await open_editor(pilot, "olmo2-7b")
        est = editor.last_estimates
        assert est.over_memory and est.remedies[0].title.startswith("micro-batch")
        await pilot.press("f5")
        await pilot.pause()
        assert editor.config.train_module.rank_microbatch_size == est.remedies[0].changes[
            "train_module.rank_microbatch_size"]
        assert not editor.last_estimates.over_memory
        assert editor.changed() == ["train_module.rank_microbatch_size"]


async def test_duration_and_list_editors(app):
    async with app.run_test(size=(100, 32)) as pilot:
        editor = await open_editor(pilot, "tiny-cpu")
        await type_into(pilot, editor, "trainer.max_duration", "1000000")
        await editor.form.focus_field("trainer.max_duration")
        row = editor.form.rows["trainer.max_duration"]
        row.query_one(".duration-unit").value = "tokens"
        await pilot.pause()
        assert editor.config is not None, editor.validation.issues
        assert editor.config.trainer.max_duration.unit.value == "tokens"
        assert editor.last_estimates.steps_to_stop == 1_000_000 // 2048 + 1
        await editor.form.focus_field("trainer.callbacks.downstream_evaluator.tasks")
        await pilot.pause()
        tasks = editor.form.rows["trainer.callbacks.downstream_evaluator.tasks"]
        tasks.query_one(".list-add").focus()  # keyboard only: focus "+ add", enter, type
        await pilot.press("enter")
        await pilot.pause()
        assert tasks.query(".list-item").last().has_focus
        await pilot.press(*"hs")
        await pilot.pause()
        assert editor.config.trainer.callbacks.downstream_evaluator.tasks == ["sample-mc", "hs"]
        tasks.query(".list-remove").first().focus()
        await pilot.press("enter")
        await pilot.pause()
        assert editor.config.trainer.callbacks.downstream_evaluator.tasks == ["hs"]


async def test_relaunch_entry_point_records_parent(app):
    async with app.run_test(size=(100, 32)) as pilot:
        await pilot.pause()
        cfg = resolve("tiny-cpu", overrides=["--model.n_layers=3"])
        editor = app.open_editor(cfg, parent_run_id="run-parent-1")
        await pilot.pause()
        assert "relaunch of run-parent-1" in editor.sub_title
        await type_into(pilot, editor, "init_seed", "7")
        editor.query_one("#launch-button").focus()
        await pilot.press("enter")
        await pilot.pause()
        request = app.last_launch
        assert request.parent_run_id == "run-parent-1" and request.overrides == ["--init_seed=7"]
        assert request.cfg.model.n_layers == 3


async def test_saving_a_run_config_without_a_preset_writes_every_section(app):
    async with app.run_test(size=(100, 32)) as pilot:
        await pilot.pause()
        cfg = resolve("tiny-cpu", overrides=["--model.n_layers=3"])
        editor = app.open_editor(cfg, parent_run_id="run-parent-2")
        await pilot.pause()
        await pilot.press("ctrl+s")
        await pilot.pause()
        app.screen.query_one("#save-name").value = "from-run"
        await pilot.press("enter")
        await pilot.pause()
        assert resolve("from-run") == editor.config


async def test_saving_warns_when_extends_brings_back_an_unset_section(app):
    async with app.run_test(size=(100, 32)) as pilot:
        editor = await open_editor(pilot, "olmo2-7b")  # dp_config comes from olmo2-base
        await editor.form.focus_field("train_module.dp_config")
        await pilot.pause()
        editor.form.toggles["train_module.dp_config"].query_one(Switch).value = False
        await pilot.pause()
        assert editor.overrides() == ["--train_module.dp_config=null"]
        await pilot.press("ctrl+s")
        await pilot.pause()
        app.screen.query_one("#save-name").value = "seven"
        await pilot.press("enter")
        await pilot.pause()
        messages = [n.message for n in app._notifications]
        assert any("differs at train_module.dp_config" in m for m in messages), messages


async def test_rope_scaling_section_in_the_editor(app):
    """The model.rope_scaling section: pick a type in its choice, the missing field's error shows
    beside that field, filling it makes the config valid; the estimates do not move."""
    from textual.widgets import Select

    async with app.run_test(size=(100, 32)) as pilot:
        editor = await open_editor(pilot, "olmo3-7b")
        params = editor.last_estimates.params
        await editor.form.focus_field("model.rope_scaling.type")
        editor.form.rows["model.rope_scaling.type"].query_one(Select).value = "yarn"
        await pilot.pause()
        await type_into(pilot, editor, "model.rope_scaling.factor", "8")
        assert editor.config is None
        assert "required for type 'yarn'" in field_error(editor, "model.rope_scaling.original_max_position_embeddings")
        await type_into(pilot, editor, "model.rope_scaling.original_max_position_embeddings", "8192")
        assert editor.config is not None, editor.validation.issues
        assert editor.config.model.rope_scaling.scaled_context == 65536
        assert editor.last_estimates.params == params
        assert sorted(editor.changed()) == ["model.rope_scaling.factor",
                                            "model.rope_scaling.original_max_position_embeddings",
                                            "model.rope_scaling.type"]
