"""The editor with the SLURM backend, through Pilot: the backend picker offers slurm, the
launch.slurm fields come from the schema like every other section, their errors show on the
field, and the launch dialog names the per-node torchrun with its rendezvous."""

from __future__ import annotations

from pilot_helpers import app, field_error, open_editor, quiet_terminal, type_into  # noqa: F401  (fixtures)
from textual.widgets import Select


async def test_backend_picker_and_slurm_fields(app):  # noqa: F811
    async with app.run_test(size=(110, 36)) as pilot:
        editor = await open_editor(pilot, "tiny-cpu")
        await editor.form.focus_field("launch.backend")
        await pilot.pause()
        picker = editor.form.rows["launch.backend"].query_one(Select)
        assert {value for _, value in picker._options if value is not Select.BLANK} >= {"local", "beaker", "slurm"}
        picker.value = "slurm"
        await pilot.pause()
        assert editor.config is not None and editor.config.launch.backend == "slurm"
        assert editor.config.launch.slurm is not None  # its defaults, as on the command line

        await type_into(pilot, editor, "launch.slurm.nodes", "2")
        await type_into(pilot, editor, "launch.slurm.partition", "gpu")
        cfg = editor.config
        assert (cfg.launch.slurm.nodes, cfg.launch.slurm.partition, cfg.launch.world_size) == (2, "gpu", 2)

        await type_into(pilot, editor, "launch.slurm.time_limit", "soon")
        assert "not a SLURM time" in field_error(editor, "launch.slurm.time_limit")
        assert editor.config is None  # launch blocked
        await type_into(pilot, editor, "launch.slurm.time_limit", "4:00:00")
        assert field_error(editor, "launch.slurm.time_limit") == "" and editor.config.launch.slurm.time_limit == "4:00:00"

        await pilot.press("ctrl+l")
        await pilot.pause()
        text = "\n".join(str(w.render()) for w in app.screen.query("Static"))
        assert "--launch.backend=slurm" in text and "--launch.slurm.nodes=2" in text
        assert "--rdzv-backend=c10d" in text and "--nnodes=$SLURM_NNODES" in text
