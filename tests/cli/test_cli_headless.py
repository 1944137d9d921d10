"""The headless front door, run as a real subprocess."""

import json
import time

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cli_helpers import run_cli

MUST_SHOW = [
    "--preset", "llama2-271m", "--dry-run", "--trainer.callbacks.lm_evaluator.enabled=false",
    "--trainer.no_checkpoints", "--trainer.hard_stop={value: 100, unit: steps}", "--data_loader.prefetch_factor=4",
]


def test_dry_run_holds_exactly_the_overrides():
    out = run_cli(*MUST_SHOW, "--json")
    assert out.returncode == 0, out.stderr
    cfg = json.loads(out.stdout)
    assert cfg["trainer"]["callbacks"]["lm_evaluator"]["enabled"] is False
    assert cfg["trainer"]["no_checkpoints"] is True
    assert cfg["trainer"]["hard_stop"] == {"value": 100, "unit": "steps"}
    assert cfg["data_loader"]["prefetch_factor"] == 4
    base = json.loads(run_cli("--preset", "llama2-271m", "--dry-run", "--json").stdout)
    # Nothing else moved.
    base["trainer"]["callbacks"]["lm_evaluator"]["enabled"] = False
    base["trainer"]["no_checkpoints"] = True
    base["trainer"]["hard_stop"] = {"value": 100, "unit": "steps"}
    base["data_loader"]["prefetch_factor"] = 4
    assert base == cfg


def test_dry_run_toml_output_reparses():
    import tomllib

    out = run_cli(*MUST_SHOW)
    assert out.returncode == 0
    data = tomllib.loads(out.stdout)
    assert data["trainer"]["hard_stop"] == {"value": 100, "unit": "steps"}
    assert "params" in out.stderr  # narration goes to stderr


def test_unknown_key_exit_2_one_line():
    out = run_cli("--preset", "llama2-271m", "--dry-run", "--trainer.hard_stop.valu=3")
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "trainer.hard_stop.valu" in lines[0] and "value" in lines[0]
    assert "Traceback" not in out.stderr and out.stdout == ""


def test_wrong_type_exit_2():
    out = run_cli("--preset", "llama2-271m", "--dry-run", "--data_loader.num_workers=abc")
    assert out.returncode == 2
    assert "data_loader.num_workers" in out.stderr and "integer" in out.stderr
    assert "Traceback" not in out.stderr


def test_unknown_preset_suggests():
    out = run_cli("--preset", "tiny-cp", "--dry-run")
    assert out.returncode == 2 and "tiny-cpu" in out.stderr


def test_stray_argument_is_usage_error():
    out = run_cli("--preset", "tiny-cpu", "--dry-run", "oops")
    assert out.returncode == 2 and "oops" in out.stderr


def test_presets_lists_and_json():
    out = run_cli("presets")
    assert out.returncode == 0 and "llama2-271m" in out.stdout and "tiny-cpu" in out.stdout
    rows = json.loads(run_cli("presets", "--json").stdout)
    by_name = {row["name"]: row for row in rows}
    assert by_name["olmo2-1b"]["params"] == 1_484_916_736 or by_name["olmo2-1b"]["params"] > 1.48e9
    assert by_name["llama2-271m"]["seq_len"] == 1024
    assert by_name["llama2-271m"]["tokens_per_step"] == 262144
    assert by_name["llama2-271m"]["parallelism"].startswith("FSDP")


def test_dry_run_wall_time_is_small():
    """Sanity bound (not the benchmark): the dry-run must not import torch."""
    start = time.perf_counter()
    out = run_cli("--preset", "llama2-271m", "--dry-run")
    assert out.returncode == 0
    assert time.perf_counter() - start < 5


# ---- property test: random overrides and TOML never produce a traceback ------------------

from engine.config import ConfigError, ExperimentConfig, apply_overrides, load_experiment  # noqa: E402
from engine.config.presets import config_file_data  # noqa: E402

KEYS = ["trainer.hard_stop", "trainer.hard_stop.value", "data_loader.num_workers", "model.d_model",
        "model.family", "train_module.ac_config.mode", "dataset.paths", "launch.beaker.gpus",
        "train_module.optim.betas", "x", "trainer..a", "", "model.n_heads.x", "launch.beaker.env.A"]
text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=30)
override = st.one_of(
    text,
    st.builds(lambda k, v: f"--{k}={v}", st.sampled_from(KEYS) | text, text),
    st.builds(lambda k: f"--{k}", st.sampled_from(KEYS) | text),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(override, max_size=4))
def test_random_overrides_only_raise_config_errors(overrides):
    try:
        load_experiment(apply_overrides({}, overrides, ExperimentConfig))
    except ConfigError as exc:
        assert exc.issues and all(str(issue) for issue in exc.issues)


toml_value = st.recursive(
    st.one_of(st.integers(), st.floats(allow_nan=False), st.booleans(), text),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(KEYS + ["value", "unit", "mode"]), inner, max_size=3),
    max_leaves=8,
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.dictionaries(st.sampled_from(["model", "trainer", "dataset", "launch", "run_name", "extends", "junk"]),
                       toml_value, max_size=4) | text)
def test_random_toml_only_raises_config_errors(tmp_path_factory, doc):
    import tomlkit

    path = tmp_path_factory.mktemp("toml") / "c.toml"
    try:
        path.write_text(tomlkit.dumps(doc) if isinstance(doc, dict) else doc)
    except Exception:
        path.write_text(str(doc))
    try:
        load_experiment(config_file_data(str(path)))
    except ConfigError as exc:
        assert exc.issues


def test_cli_random_garbage_exit_code_is_2():
    for args in (["--preset"], ["--preset", "tiny-cpu", "--=3"], ["--preset", "tiny-cpu", "--a..b=1"],
                 ["--preset", "tiny-cpu", "--model.d_model=[1,"], ["--config", "/nonexistent.toml"]):
        out = run_cli(*args, "--dry-run")
        assert out.returncode == 2, (args, out.stderr)
        assert "Traceback" not in out.stderr
