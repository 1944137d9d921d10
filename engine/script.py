"""The script API: your own train.py, for what a registry entry cannot say (OLMo-core's style).

    from engine.script import config, train
    from engine.train.callback import Callback

    class LossSpikes(Callback):
        priority = 20  # a metric producer runs before the metrics writer
        def post_step(self):
            self.trainer.record_metric("my_metric", ...)

    cfg = config(preset="tiny-cpu", overrides=["--trainer.max_duration=50steps", *sys.argv[1:]])
    raise SystemExit(train(cfg, callbacks=[LossSpikes()]))

Run it with `python train.py`, or on several ranks with `torchrun --nproc_per_node=2 train.py`.
It trains like `olmo-train`: the run dir under the runs root (`olmo-tui runs`, the monitor and
`olmo-tui compare` see the run), the pre-flight, resume by running it again, the exit codes. The
extra callbacks are not part of the config, so config.toml stays valid everywhere; a component
that others should be able to pick from a config belongs in an extension (engine/extend.py).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional, Sequence

from engine.config import ExperimentConfig


def config(preset: Optional[str] = None, config_file: Optional[str] = None,
           overrides: Sequence[str] = ()) -> ExperimentConfig:
    """The config a preset or file plus overrides make (engine.config.resolve); a mistake prints
    its one line per problem and exits 2, as olmo-train does."""
    from engine.config import EXIT_CONFIG_ERROR, ConfigError, resolve

    try:
        return resolve(preset=preset, config_file=config_file, overrides=list(overrides))
    except ConfigError as exc:
        for line in exc.lines():
            print(line, file=sys.stderr)
        raise SystemExit(EXIT_CONFIG_ERROR) from None


def train(cfg: ExperimentConfig, run_dir: Optional[str] = None, callbacks: Sequence = ()) -> int:
    """Train `cfg` in this process (each rank under torchrun); returns the exit code
    (docs/CONTRACTS.md). A user mistake prints its one line and returns 2."""
    from engine.config.paths import absolute_paths
    from engine.errors import EXIT_USER_ERROR, UserError
    from engine.run import main_training, resolve_run_dir

    try:
        path = resolve_run_dir(cfg.run_name, run_dir)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    return main_training(absolute_paths(cfg), Path(path), callbacks)
