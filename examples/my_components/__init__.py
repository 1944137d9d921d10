"""An extension project: your own components for olmo-tui, outside engine/ (docs/GUIDE.md,
"Customizing components").

This module is what a config's `extensions` list names (`examples/my_components`). It only
declares configs and registers components: the app imports it to learn their fields and never
imports torch, so the torch code lives in `modules.py`, named by "module:attr" references that
only the engine imports.

- MLP `relu2`: the squared-ReLU feed-forward of Primer (So et al., 2021), w2(relu(w1 x)^2),
  chosen with `model.mlp.kind = "relu2"`; its fields are `model.mlp.relu2.*`.
- Callback `weight_stats`: records the RMS of the weights as the metric `weight_rms`
  (metrics.jsonl, the [metrics] log lines, the monitor and `olmo-tui compare`), switched on by
  setting `trainer.callbacks.weight_stats` (e.g. `--trainer.callbacks.weight_stats.every=10`).
- Data source `arithmetic`: byte-tokenized sums ("12+7=19") from a Python generator, chosen
  with `dataset.kind = "arithmetic"`; its fields are `dataset.arithmetic.*`.
"""

from engine.extend import (CallbackConfig, Config, Field, register_callback, register_data_source,
                           register_mlp)


class ReLU2Config(Config):
    """Squared-ReLU feed-forward (Primer): w2(relu(w1 x)^2), two projections instead of three."""

    hidden_multiplier: float = Field(4.0, gt=0, description="Hidden size as a multiple of d_model "
                                     "(4 gives about the gated MLP's weights at its default 8/3).")

    def hidden(self, model) -> int:
        return int(self.hidden_multiplier * model.d_model)

    def matmul_params(self, model) -> int:
        """Weights per block, so the estimates and MFU count this MLP right."""
        return 2 * model.d_model * self.hidden(model)


class WeightStatsConfig(CallbackConfig):
    """Records `weight_rms`, the root mean square of all weights."""

    every: int = Field(10, gt=0, description="Steps between recordings (a logged step records too).")


class ArithmeticConfig(Config):
    """Sums of two numbers, one per document ("12+7=19"), as byte ids from a generator."""

    num_tokens: int = Field(1 << 20, gt=0, description="Tokens drawn from the generator.")
    max_operand: int = Field(999, gt=0, description="Largest number added.")
    seed: int = Field(0, ge=0, description="Seed of the generator.")


register_mlp("relu2", ReLU2Config, build="my_components.modules:ReLU2MLP")
register_callback("weight_stats", WeightStatsConfig, build="my_components.modules:WeightStats")
# The data source runs in the app's pre-flight too (the data checks): keep it torch-free.
register_data_source("arithmetic", ArithmeticConfig, build="my_components.data:arithmetic_source")
