"""The MoE fields in the real editor (Pilot): the estimates count active parameters, a top_k
above num_experts is an error beside top_k, and expert parallelism that cannot divide the
experts is an error beside ep_config.degree."""

from __future__ import annotations

from pilot_helpers import app, field_error, open_editor, type_into  # noqa: F401 (fixtures)


async def test_moe_fields_and_active_parameters_in_the_editor(app):
    async with app.run_test(size=(120, 40)) as pilot:
        editor = await open_editor(pilot, "olmoe-1b-7b")
        est = editor.last_estimates
        assert est.active_params == editor.config.model.num_active_params() < est.params / 5
        body = str(editor.query_one("#est-body").render())
        assert "  active    1.3B per token" in body

        await type_into(pilot, editor, "model.moe.top_k", "65")
        assert editor.config is None
        assert "exceeds num_experts (64)" in field_error(editor, "model.moe.top_k")
        await type_into(pilot, editor, "model.moe.top_k", "16")
        assert editor.config is not None, editor.validation.issues
        assert editor.last_estimates.active_params > est.active_params  # 16 experts per token now

        await type_into(pilot, editor, "train_module.ep_config.degree", "3")
        assert editor.config is None
        assert "must divide model.moe.num_experts (64)" in field_error(editor, "train_module.ep_config.degree")
        await type_into(pilot, editor, "train_module.ep_config.degree", "8")
        assert editor.config is not None, editor.validation.issues
        assert editor.last_estimates.memory.gathered < est.memory.gathered
