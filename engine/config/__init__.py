"""The experiment schema (pydantic, torch-free): the contract between the app and the engine."""

from .base import Config, DType, Duration, DurationUnit
from .data import DataLoaderConfig, DatasetConfig, TokenizerConfig
from .errors import EXIT_CONFIG_ERROR, ConfigError, Issue
from .experiment import ExperimentConfig, cross_field_issues, load_experiment, validate_experiment
from .launch import BeakerConfig, LaunchConfig, MountConfig, SecretConfig
from .model import ModelConfig
from .overrides import apply_overrides, format_override, parse_override, set_path
from .presets import list_presets, preset_data, resolve, to_toml
from .train_module import (
    ActivationCheckpointingConfig,
    DataParallelConfig,
    OptimConfig,
    ParamGroupOverride,
    SchedulerConfig,
    TensorParallelConfig,
    TrainModuleConfig,
)
from .trainer import CallbacksConfig, TrainerConfig

__all__ = [name for name in dir() if not name.startswith("_")]
