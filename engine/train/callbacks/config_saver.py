"""Writes the resolved config (config.toml, secrets never included: the schema holds only secret
names) into every checkpoint, so a checkpoint alone says how it was trained."""

from __future__ import annotations

from pathlib import Path

from engine.config import to_toml
from engine.config.trainer import ConfigSaverConfig
from engine.run_dir import CONFIG_FILE

from ..callback import Callback



class ConfigSaverCallback(Callback):
    name = "config_saver"
    priority = 90

    def __init__(self, config: ConfigSaverConfig):
        super().__init__()

    def pre_checkpoint_commit(self, staging_dir: Path) -> None:
        (staging_dir / CONFIG_FILE).write_text(to_toml(self.trainer.cfg))
