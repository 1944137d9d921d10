"""The editor shows and edits an extension's fields like built-in ones (Pilot, real app): a user
preset names an extension written outside the repo and picks its MLP; the form has the MLP's
own section, validates it as typed and launches with it."""

from __future__ import annotations

import os
from pathlib import Path

from textual.widgets import TextArea

from extension_helpers import write_extension
from pilot_helpers import app, field_error, open_editor, quiet_terminal, type_into, wait_for  # noqa: F401 (fixtures)


def write_user_preset(name: str, package: Path) -> None:
    folder = Path(os.environ["XDG_CONFIG_HOME"]) / "olmo-tui" / "presets"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.toml").write_text(
        f'extends = "tiny-cpu"\nextensions = ["{package}"]\n\n[model.mlp]\nkind = "relu2"\n')


async def test_the_form_edits_an_extension_mlp_field(app, tmp_path_factory):
    # A module name of its own: other tests of this process may load the helper's `my_ext`.
    package = write_extension(tmp_path_factory.mktemp("outside_repo"), name="pilot_ext")
    write_user_preset("with-ext", package)
    async with app.run_test(size=(100, 32)) as pilot:
        editor = await open_editor(pilot, "with-ext")
        assert "model.mlp.relu2.hidden_multiplier" in editor.widget_paths
        assert "trainer.callbacks.param_stats" in editor.widget_paths  # the extension's callback section
        assert editor.data["model"]["mlp"]["kind"] == "relu2"
        spec = next(s for s in editor.specs if s.path == "model.mlp.kind")
        # a choice among the registered MLPs (registries are per process: other tests' may be there)
        assert spec.choices[0] == "gated" and "relu2" in spec.choices

        await type_into(pilot, editor, "model.mlp.relu2.hidden_multiplier", "-1", keys=True)
        assert "greater than 0" in field_error(editor, "model.mlp.relu2.hidden_multiplier")
        await type_into(pilot, editor, "model.mlp.relu2.hidden_multiplier", "3", keys=True)
        assert field_error(editor, "model.mlp.relu2.hidden_multiplier") == ""

        await pilot.press("ctrl+l")
        await pilot.pause()
        launched = app.last_launch
        assert launched is not None and launched.cfg.model.mlp.relu2.hidden_multiplier == 3.0
        assert launched.overrides == ["--model.mlp.relu2.hidden_multiplier=3.0"]
        # the estimates count the ReLU^2 MLP's two projections, not the gated three
        assert launched.cfg.model.num_params() < launched.cfg.model.model_copy(
            update={"mlp": type(launched.cfg.model.mlp)()}).num_params()


async def test_an_extension_listed_in_the_editor_brings_its_fields_into_the_form(app, tmp_path_factory):
    package = write_extension(tmp_path_factory.mktemp("outside_repo"), name="toml_ext", suffix="_b")
    async with app.run_test(size=(100, 32)) as pilot:
        editor = await open_editor(pilot, "tiny-cpu")
        assert "model.mlp.relu2_b.hidden_multiplier" not in editor.widget_paths
        await pilot.press("ctrl+t")  # raw TOML: name the extension and pick its MLP
        await pilot.pause()
        area = editor.query_one("#toml", TextArea)
        assert "extensions = []" in area.text
        area.text = area.text.replace("extensions = []", f'extensions = ["{package}"]').replace(
            'kind = "gated"', 'kind = "relu2_b"')
        await pilot.pause()
        await pilot.press("ctrl+t")
        await wait_for(pilot, lambda: "model.mlp.relu2_b.hidden_multiplier" in editor.widget_paths
                       and editor.query("#form") and editor.validation.ok)
        await type_into(pilot, editor, "model.mlp.relu2_b.hidden_multiplier", "2", keys=True)
        assert field_error(editor, "model.mlp.relu2_b.hidden_multiplier") == ""
        await pilot.press("ctrl+l")
        await pilot.pause()
        assert app.last_launch is not None and app.last_launch.cfg.model.mlp.relu2_b.hidden_multiplier == 2.0
