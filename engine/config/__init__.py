"""The experiment schema (pydantic, torch-free): the contract between the app and the engine.

Names resolve on first use (PEP 562), so importing one light module of the package (errors,
the preset files) does not build every pydantic model: the app's first screen reads cached
preset summaries without loading the schema at all (olmo_tui/core/presets/catalog.py).
"""

from importlib import import_module
from typing import TYPE_CHECKING

_EXPORTS = {
    "base": ("Config", "DType", "Duration", "DurationUnit"),
    "data": ("DataLoaderConfig", "DatasetConfig", "TokenizerConfig"),
    "errors": ("EXIT_CONFIG_ERROR", "ConfigError", "Issue"),
    "experiment": ("ExperimentConfig", "cross_field_issues", "load_experiment", "validate_experiment"),
    "launch": ("BeakerConfig", "LaunchConfig", "MountConfig", "SecretConfig"),
    "model": ("ModelConfig",),
    "notify": ("NOTIFY_EVENTS", "NotifyConfig"),
    "overrides": ("apply_overrides", "format_override", "parse_override", "set_path"),
    "paths": ("absolute_paths", "relative_paths", "schema_path_fields"),
    "rope_scaling": ("RopeScalingConfig",),
    "presets": ("list_presets", "preset_data", "resolve", "to_toml"),
    "train_module": ("ActivationCheckpointingConfig", "ContextParallelConfig", "DataParallelConfig",
                     "ExpertParallelConfig", "OptimConfig",
                     "ParamGroupOverride", "PipelineParallelConfig", "SchedulerConfig", "TensorParallelConfig",
                     "TrainModuleConfig"),
    "trainer": ("CallbacksConfig", "TrainerConfig"),
}
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}
__all__ = sorted(_WHERE)


def __getattr__(name: str):
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f".{module}", __name__), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))


if TYPE_CHECKING:  # for type checkers and readers: the same names, imported eagerly
    from .base import Config, DType, Duration, DurationUnit  # noqa: F401
    from .data import DataLoaderConfig, DatasetConfig, TokenizerConfig  # noqa: F401
    from .errors import EXIT_CONFIG_ERROR, ConfigError, Issue  # noqa: F401
    from .experiment import ExperimentConfig, cross_field_issues, load_experiment, validate_experiment  # noqa: F401
    from .launch import BeakerConfig, LaunchConfig, MountConfig, SecretConfig  # noqa: F401
    from .model import ModelConfig  # noqa: F401
    from .overrides import apply_overrides, format_override, parse_override, set_path  # noqa: F401
    from .paths import absolute_paths, relative_paths, schema_path_fields  # noqa: F401
    from .rope_scaling import RopeScalingConfig  # noqa: F401
    from .presets import list_presets, preset_data, resolve, to_toml  # noqa: F401
    from .train_module import (  # noqa: F401
        ActivationCheckpointingConfig, ContextParallelConfig, DataParallelConfig, OptimConfig, ParamGroupOverride,
        PipelineParallelConfig, SchedulerConfig, TensorParallelConfig, TrainModuleConfig,
    )
    from .trainer import CallbacksConfig, TrainerConfig  # noqa: F401
