"""Values that used to pass validation and fail inside the run (or quietly mean something else):
infinite / NaN floats, seeds numpy cannot take, true/false read as a number, and the bare flag
form on a field that is not true/false. Each is one line naming the field, in every spelling
(--a.b=v, --set a.b=v, a config file), and a launch creates nothing."""

from __future__ import annotations

import os

import pytest

from cli_helpers import run_cli
from engine.config import ConfigError, ExperimentConfig, apply_overrides, load_experiment, resolve


def issues(*overrides):
    with pytest.raises(ConfigError) as info:
        load_experiment(apply_overrides({}, overrides, ExperimentConfig))
    return [str(issue) for issue in info.value.issues]


@pytest.mark.parametrize("override, field", [
    ("--train_module.optim.lr=.inf", "train_module.optim.lr"),
    ("--train_module.optim.lr=nan", "train_module.optim.lr"),
    ("--train_module.optim.weight_decay=.inf", "train_module.optim.weight_decay"),
    ("--train_module.max_grad_norm=.inf", "train_module.max_grad_norm"),
    ("--model.init_std=-.inf", "model.init_std"),
])
def test_infinite_and_nan_floats_are_refused(override, field):
    (line,) = issues(override)
    assert line.startswith(f"{field}: ") and "finite number" in line, line


@pytest.mark.parametrize("field", ["init_seed", "data_loader.seed"])
def test_seeds_beyond_numpys_range_are_refused(field):
    (line,) = issues(f"--{field}={2**70}")
    assert line.startswith(f"{field}: ") and str(2**32 - 1) in line, line
    top = load_experiment(apply_overrides({}, [f"--{field}={2**32 - 1}"], ExperimentConfig))
    assert (top.init_seed if field == "init_seed" else top.data_loader.seed) == 2**32 - 1


@pytest.mark.parametrize("override", ["--model.n_layers", "model.n_layers", "--run_name"])
def test_bare_flag_form_only_sets_true_false_fields(override):
    (line,) = issues(override)
    field = override.lstrip("-")
    assert line.startswith(f"{field}: needs a value: --{field}=VALUE"), line


def test_bare_flag_form_still_sets_a_boolean():
    cfg = load_experiment(apply_overrides({}, ["--trainer.no_checkpoints", "model.qk_norm"], ExperimentConfig))
    assert cfg.trainer.no_checkpoints is True and cfg.model.qk_norm is True


@pytest.mark.parametrize("override", ["--train_module.optim.lr=true", "--model.d_model=false"])
def test_true_or_false_is_not_a_number(override):
    (line,) = issues(override)
    assert line.endswith("expected a number") and "got " in line, line


def test_a_config_file_cannot_turn_true_into_a_number_either(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('extends = "tiny-cpu"\n[model]\nn_layers = true\n')
    with pytest.raises(ConfigError) as info:
        resolve(config_file=str(path))
    assert [str(i) for i in info.value.issues] == ["model.n_layers: got true, expected a number"]


@pytest.mark.parametrize("args", [
    ["--train_module.optim.lr=.inf"],
    ["--set", "model.n_layers"],
    [f"--init_seed={2**70}"],
])
def test_launch_refuses_them_in_one_line_and_creates_nothing(args, tmp_path):
    result = run_cli("--preset", "tiny-cpu", *args, "--json", timeout=120)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in result.stderr, result.stderr
    runs_dir = os.environ["OLMO_TUI_RUNS_DIR"]
    assert not os.path.exists(runs_dir) or not os.listdir(runs_dir)
    assert run_cli("runs", "--json").stdout.strip() in ("[]", "")
