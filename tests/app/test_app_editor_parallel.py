"""The mesh in the real editor (Pilot, real presets): the estimates panel shows dp x tp x cp x pp
and the worst rank's memory, a CP degree the heads cannot take is an error beside the field, and
a valid one moves the mesh and the memory."""

from __future__ import annotations

from textual.widgets import Static

from engine.config import resolve
from olmo_tui.core.config import estimates

from pilot_helpers import app, field_error, open_editor, type_into  # noqa: F401 (fixtures)


def panel_text(editor) -> str:
    return str(editor.query_one("#est-body", Static).render())


async def test_cp_degree_in_the_editor_moves_the_mesh_and_memory(app):
    async with app.run_test(size=(120, 40)) as pilot:
        editor = await open_editor(pilot, "llama3-8b-256k")
        assert "dp1 x tp1 x cp8 x pp1" in panel_text(editor)
        assert not editor.last_estimates.over_memory

        await type_into(pilot, editor, "train_module.cp_config.degree", "16")
        assert "must divide model.n_kv_heads (8)" in field_error(editor, "train_module.cp_config.degree")
        assert "(invalid config: last valid)" in panel_text(editor)

        await type_into(pilot, editor, "train_module.cp_config.degree", "2")
        assert field_error(editor, "train_module.cp_config.degree") == ""
        assert "dp4 x tp1 x cp2 x pp1" in panel_text(editor)
        expected = estimates.memory_estimate(resolve("llama3-8b-256k", overrides=["--train_module.cp_config.degree=2"]))
        assert editor.last_estimates.memory.total == expected.total
