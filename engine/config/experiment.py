"""The whole experiment: the contract between the app and the engine.

Single-section rules live on each section; rules that relate fields of different sections
are in `cross_field_issues`, so the app can show one error beside every field it involves.
"""

from __future__ import annotations

from typing import Any, List, Optional

from pydantic import Field, ValidationError, ValidationInfo, field_validator, model_validator

from .base import MAX_SEED, Config, DurationUnit, path_kind
from .data import DataLoaderConfig, DatasetConfig, mixture_issues
from .errors import FIELD_ERROR, ConfigError, Issue
from .extensions.schema import set_root
from .launch import LaunchConfig
from .model import SLIDING_WINDOW_FAMILIES, ModelConfig
from .moe import expert_parallel_issues
from .parallel import degrees, parallelism_issues
from .train_module import TrainModuleConfig
from .trainer import TrainerConfig

_SKIP_CROSS = "skip_cross_field"


class ExperimentConfig(Config):
    """Everything needed to reproduce a training run."""

    extensions: List[str] = Field(
        default_factory=list, description="Your own components: importable module names, or paths to a .py "
        "file or a package folder, each registering callbacks, model parts, data sources, ... (engine/extend.py)",
        json_schema_extra=path_kind("module"))
    run_name: str = Field("run", min_length=1, description="Name of the run (used in the run id and logs).")
    init_seed: int = Field(0, ge=0, le=MAX_SEED, description="Seed of the weight init and other randomness "
                           "(0 to 2**32 - 1).")
    model: ModelConfig = Field(default_factory=ModelConfig, description="Transformer architecture.")
    dataset: DatasetConfig = Field(default_factory=DatasetConfig, description="Training data.")
    data_loader: DataLoaderConfig = Field(default_factory=DataLoaderConfig, description="Batching.")
    train_module: TrainModuleConfig = Field(default_factory=TrainModuleConfig, description="Training step.")
    trainer: TrainerConfig = Field(default_factory=TrainerConfig, description="Training loop and callbacks.")
    launch: LaunchConfig = Field(default_factory=LaunchConfig, description="Where the run executes.")

    @field_validator("extensions", mode="before")
    @classmethod
    def _one_extension(cls, value):
        return [value] if isinstance(value, str) else value  # `--extensions=my_ext.py`: a list of one

    @model_validator(mode="after")
    def _cross_fields(self, info: ValidationInfo) -> "ExperimentConfig":
        if info.context and info.context.get(_SKIP_CROSS):
            return self
        issues = cross_field_issues(self)
        if issues:
            raise ValueError("; ".join(str(issue) for issue in issues))
        return self

    # ---- derived quantities used by the engine and the estimates --------------------------
    @property
    def tp_degree(self) -> int:
        return self.train_module.tp_config.degree if self.train_module.tp_config else 1

    @property
    def cp_degree(self) -> int:
        return self.train_module.cp_config.degree if self.train_module.cp_config else 1

    @property
    def pp_degree(self) -> int:
        return self.train_module.pp_config.degree if self.train_module.pp_config else 1

    @property
    def dp_world_size(self) -> int:
        """Ranks that see different batches: the world over tp x cp x pp (engine/config/parallel.py)."""
        d = degrees(self)
        return max(self.launch.world_size // (d["tp"] * d["cp"] * d["pp"]), 1)

    @property
    def tokens_per_step(self) -> int:
        return self.data_loader.global_batch_size

    def steps_for(self, duration) -> Optional[int]:
        """Steps a Duration amounts to; None for epochs (depends on the dataset's size)."""
        if duration.unit == DurationUnit.steps:
            return duration.value
        if duration.unit == DurationUnit.tokens:
            return -(-duration.value // self.tokens_per_step)
        return None


set_root(ExperimentConfig)  # an extension's components rebuild it (extensions/schema.py)


def cross_field_issues(cfg: ExperimentConfig) -> List[Issue]:
    issues: List[Issue] = []
    tm, dl, ds, model = cfg.train_module, cfg.data_loader, cfg.dataset, cfg.model
    seq = ds.sequence_length

    def add(paths: tuple, message: str) -> None:
        issues.append(Issue(paths, message))

    if tm.rank_microbatch_size % seq:
        add(("train_module.rank_microbatch_size", "dataset.sequence_length"),
            f"micro-batch ({tm.rank_microbatch_size} tokens) must be a multiple of the sequence length ({seq})")
    per_step = tm.rank_microbatch_size * cfg.dp_world_size
    if dl.global_batch_size % per_step:
        add(("data_loader.global_batch_size", "train_module.rank_microbatch_size"),
            f"global batch ({dl.global_batch_size} tokens) must be divisible by micro-batch "
            f"({tm.rank_microbatch_size}) x data-parallel size ({cfg.dp_world_size}) = {per_step}")
    if seq > tm.max_sequence_length:
        add(("dataset.sequence_length", "train_module.max_sequence_length"),
            f"sequence length {seq} exceeds train_module.max_sequence_length {tm.max_sequence_length}")
    if ds.tokenizer.vocab_size > model.vocab_size:
        add(("dataset.tokenizer.vocab_size", "model.vocab_size"),
            f"tokenizer emits {ds.tokenizer.vocab_size} ids but the model embeds only {model.vocab_size}")
    if ds.kind == "numpy" and not ds.paths and not ds.sources:
        add(("dataset.paths", "dataset.kind"), "dataset.kind = 'numpy' needs at least one path "
            "(dataset.paths) or a mixture (dataset.sources)")
    issues.extend(Issue(paths, message) for paths, message in mixture_issues(cfg))
    if dl.prefetch_factor is not None and dl.num_workers == 0:
        add(("data_loader.prefetch_factor", "data_loader.num_workers"),
            "prefetch_factor needs num_workers > 0")

    ckpt = cfg.trainer.callbacks.checkpointer
    if ckpt.ephemeral_save_interval is not None and ckpt.ephemeral_save_interval >= ckpt.save_interval:
        add(("trainer.callbacks.checkpointer.ephemeral_save_interval", "trainer.callbacks.checkpointer.save_interval"),
            f"ephemeral interval ({ckpt.ephemeral_save_interval}) must be below the save interval ({ckpt.save_interval})")

    if tm.ac_config and tm.ac_config.mode == "budget" and not tm.compile_model:
        add(("train_module.ac_config.mode", "train_module.compile_model"),
            "activation checkpointing mode 'budget' needs train_module.compile_model = true")

    issues.extend(model_family_issues(model))
    from .extensions.loader import check_listed

    issues.extend(Issue((path, "extensions"), message) for path, message in check_listed(cfg))

    if tm.tp_config:
        degree = tm.tp_config.degree
        if model.tie_embeddings:
            add(("train_module.tp_config.degree", "model.tie_embeddings"),
                "tensor parallelism does not support tied embeddings (model.tie_embeddings = true); "
                "use FSDP (train_module.dp_config) instead")
        for name, value in (("n_heads", model.n_heads), ("n_kv_heads", model.kv_heads)):
            if value % degree:
                add(("train_module.tp_config.degree", f"model.{name}"),
                    f"tensor-parallel degree {degree} must divide model.{name} ({value})")
    issues.extend(parallelism_issues(cfg))
    issues.extend(expert_parallel_issues(cfg))

    if tm.float8 != "off":
        from engine.hardware import BY_NAME

        card = BY_NAME.get(cfg.launch.accelerator) if cfg.launch.accelerator else None
        if card is not None and not card.float8:
            add(("train_module.float8", "launch.accelerator"),
                f"float8 '{tm.float8}' needs float8 tensor cores (H100, H200, L40S, B200); {card.name} has none")
        if tm.tp_config:
            add(("train_module.float8", "train_module.tp_config"),
                "float8 with tensor parallelism is not supported: unset one of them")

    dp = tm.dp_config
    if dp and dp.name == "hsdp" and dp.shard_degree and cfg.dp_world_size % dp.shard_degree:
        add(("train_module.dp_config.shard_degree", "launch.nproc_per_node"),
            f"HSDP shard degree {dp.shard_degree} must divide the data-parallel size ({cfg.dp_world_size})")

    if cfg.trainer.hard_stop and cfg.trainer.hard_stop.unit == cfg.trainer.max_duration.unit:
        if cfg.trainer.hard_stop.value > cfg.trainer.max_duration.value:
            add(("trainer.hard_stop", "trainer.max_duration"),
                f"hard_stop ({cfg.trainer.hard_stop}) is past max_duration ({cfg.trainer.max_duration})")

    if cfg.launch.backend == "beaker" and cfg.launch.beaker is None:
        add(("launch.beaker", "launch.backend"), "launch.backend = 'beaker' needs a [launch.beaker] section")
    slurm = cfg.launch.slurm if cfg.launch.backend == "slurm" else None
    if slurm and slurm.gpus_per_node and cfg.launch.nproc_per_node > slurm.gpus_per_node:
        add(("launch.nproc_per_node", "launch.slurm.gpus_per_node"),
            f"{cfg.launch.nproc_per_node} ranks per node but only {slurm.gpus_per_node} GPUs per node requested")
    return issues


def model_family_issues(model) -> List[Issue]:
    """Rules between the model's fields: the attention pattern and the Gemma-only knobs."""
    issues: List[Issue] = []
    window_families = ", ".join(SLIDING_WINDOW_FAMILIES)
    if model.sliding_window is not None and model.family not in SLIDING_WINDOW_FAMILIES:
        issues.append(Issue(("model.sliding_window", "model.family"),
                            f"sliding-window layers exist in families {window_families}, not {model.family!r}; "
                            "unset model.sliding_window or change model.family"))
    if model.rope_local_theta is not None and model.sliding_window is None:
        issues.append(Issue(("model.rope_local_theta", "model.sliding_window"),
                            "rope_local_theta applies to sliding-window layers; set model.sliding_window "
                            "or unset model.rope_local_theta"))
    for name in ("query_pre_attn_scalar", "final_logit_softcap"):
        if getattr(model, name) is not None and model.family != "gemma3":
            issues.append(Issue((f"model.{name}", "model.family"),
                                f"{name} is a Gemma-3 setting (family 'gemma3'), not {model.family!r}; unset it"))
    return issues


def _loc_to_path(loc: tuple) -> str:
    # pydantic puts validator names such as 'function-after[...]' into locs; keep field names only.
    return ".".join(str(part) for part in loc if not str(part).startswith(("function-", "tagged-union")))


def _describe(error: dict) -> str:
    kind, given = error["type"], error.get("input")
    expected = {
        "finite_number": "a finite number",
        "int_parsing": "an integer", "int_type": "an integer", "int_from_float": "a whole number",
        "float_parsing": "a number", "float_type": "a number", "bool_parsing": "true or false",
        "bool_type": "true or false", "string_type": "a string", "list_type": "a list",
        "dict_type": "a mapping", "model_type": "a mapping", "model_attributes_type": "a mapping",
        "tuple_type": "a list", "missing": None, "extra_forbidden": None,
    }
    if kind == "missing":
        return "required field is missing"
    if kind == "extra_forbidden":
        return "unknown field"
    if kind in ("literal_error", "enum"):
        allowed = error.get("ctx", {}).get("expected", "")
        return f"got {given!r}, allowed values: {allowed}"
    if kind in expected:
        return f"got {given!r}, expected {expected[kind]}"
    message = error["msg"]
    if message.startswith("Value error, "):
        message = message[len("Value error, "):]
    if kind.startswith(("greater", "less", "too_short", "too_long")):
        return f"got {given!r}: {message[0].lower()}{message[1:]}"
    return message


def _error_path(error: dict) -> str:
    path = _loc_to_path(error["loc"])
    if error["type"] == FIELD_ERROR:  # a section's rule about one of its fields: filed under that field
        path = f"{path}.{error['ctx']['field']}" if path else error["ctx"]["field"]
    return path


def issues_from_validation_error(exc: ValidationError) -> List[Issue]:
    return [Issue((path,) if (path := _error_path(e)) else (), _describe(e)) for e in exc.errors()]


def validate_experiment(data: Any) -> tuple[Optional[ExperimentConfig], List[Issue]]:
    """Validate raw data; return the config (None if invalid) and every issue found.

    Field-level errors come first; cross-field rules are checked only once the fields are valid,
    and each of their issues names all the fields involved. The extensions the data names are
    imported first: their components' fields are part of the schema.
    """
    from .extensions.loader import ensure_loaded

    try:
        ensure_loaded(data)
    except ConfigError as exc:
        return None, exc.issues
    try:
        cfg = ExperimentConfig.model_validate(data, context={_SKIP_CROSS: True})
    except ValidationError as exc:
        return None, issues_from_validation_error(exc)
    issues = cross_field_issues(cfg)
    return (None if issues else cfg), issues


def load_experiment(data: Any) -> ExperimentConfig:
    """Like validate_experiment but raises ConfigError."""
    cfg, issues = validate_experiment(data)
    if cfg is None:
        raise ConfigError(issues)
    return cfg
