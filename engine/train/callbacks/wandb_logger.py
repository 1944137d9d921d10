"""Weights & Biases logging from rank 0: every logged metrics record, under the same keys as
metrics.jsonl, at the same step.

Optional: the `wandb` package comes with `pip install 'olmo-tui[wandb]'`; a run that enables
this callback without it stops before training with one line saying so.

Modes:
- offline (the default): nothing leaves the machine; W&B writes its files under
  `<run dir>/wandb/offline-run-*`, which `wandb sync <that dir>` uploads later.
- online: streams to the W&B service and needs WANDB_API_KEY in the environment. The key is
  read by wandb itself from the environment; it is never a config field, never passed as an
  argument and never written by this project (config.toml, launch.json and logs only carry
  variable names; on Beaker, expose it with launch.beaker.secrets = [{env_var = "WANDB_API_KEY",
  secret = "<your Beaker secret>"}]).

Resume: the W&B run id is part of the callback state, so a resumed run keeps appending to the
same W&B run.
"""

from __future__ import annotations

import os
import secrets
from typing import Any, Dict, Optional

from engine.config.trainer import WandBConfig
from engine.errors import UserError

from ..callback import Callback

API_KEY_ENV = "WANDB_API_KEY"


def import_wandb():
    try:
        import wandb
    except ImportError:
        raise UserError("trainer.callbacks.wandb.enabled", "the wandb package is not installed: "
                        "pip install 'olmo-tui[wandb]', or set trainer.callbacks.wandb.enabled = false") from None
    return wandb


def loggable(metrics: Dict[str, Any]) -> Dict[str, Any]:
    """The record without its step (W&B's own axis) and without unknown (None) values."""
    return {k: v for k, v in metrics.items() if k != "step" and v is not None}


class WandBCallback(Callback):
    name = "wandb"
    priority = -15  # consumes metrics: after every producer

    def __init__(self, config: WandBConfig):
        super().__init__()
        self.config = config
        self.run_id: Optional[str] = None
        self._run = None

    def post_attach(self) -> None:
        if not self.trainer.is_rank0:
            return
        self._wandb = import_wandb()  # fail before training, not at the first log step
        if self.config.mode == "online" and not os.environ.get(API_KEY_ENV):
            raise UserError("trainer.callbacks.wandb.mode", f"online needs {API_KEY_ENV} in the environment "
                            "(it is never read from the config); or use mode = offline")

    def pre_train(self) -> None:
        if not self.trainer.is_rank0:
            return
        wandb = self._wandb
        cfg = self.trainer.cfg
        # W&B ids: lower-case letters and digits; kept in the checkpoint so a resume continues it.
        self.run_id = self.run_id or secrets.token_hex(4)
        run_dir = self.trainer.run_dir
        self._run = wandb.init(
            project=self.config.project, entity=self.config.entity, group=self.config.group,
            tags=list(self.config.tags) or None, name=self.config.name or cfg.run_name,
            id=self.run_id, resume="allow", dir=str(run_dir), mode=self.config.mode,
            config=cfg.model_dump(mode="json"),
            # console="off": our own log lines stay ours (the app parses them); silent: no banner.
            settings=wandb.Settings(console="off", silent=True),
        )
        where = f"{run_dir / 'wandb'} (upload later: wandb sync <dir>)" if self.config.mode == "offline" \
            else self._run.url
        self.trainer.log(f"wandb: {self.config.mode} run {self.run_id} -> {where}")

    def log_metrics(self, step: int, metrics: Dict[str, Any]) -> None:
        if self._run is not None:
            self._run.log(loggable(metrics), step=step)

    def _finish(self, exit_code: int) -> None:
        if self._run is not None:
            run, self._run = self._run, None
            run.finish(exit_code=exit_code)

    def post_train(self) -> None:
        self._finish(0)

    def on_error(self, exc: BaseException) -> None:
        self._finish(1)

    def close(self) -> None:
        self._finish(0)

    def state_dict(self) -> Dict[str, Any]:
        return {"run_id": self.run_id} if self.run_id else {}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        self.run_id = state.get("run_id") or self.run_id
