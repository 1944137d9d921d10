"""The mesh fields (tp / cp / pp) against the model, the batch and the world size: one issue per
broken rule naming every field it involves, and one line with exit 2 from the headless CLI."""

from __future__ import annotations

import pytest

from cli_helpers import run_cli
from engine.config import ExperimentConfig, apply_overrides, preset_data, validate_experiment

BASE = "llama2-271m"  # 16 layers, 8 heads (= KV heads), seq 1024, 256 x 1024 tokens per step


def issues(*overrides: str):
    data = apply_overrides(preset_data(BASE), [f"--{o}" for o in overrides], ExperimentConfig)
    return validate_experiment(data)


@pytest.mark.parametrize("overrides,paths,words", [
    (["train_module.cp_config={degree: 3}", "launch.nproc_per_node=3"],
     ("train_module.cp_config.degree", "model.n_heads"), "must divide model.n_heads (8)"),
    (["train_module.cp_config={degree: 4}", "launch.nproc_per_node=4", "train_module.tp_config={degree: 4}"],
     ("train_module.cp_config.degree", "model.n_heads"), "(8 / tp 4 = 2)"),
    (["train_module.cp_config={degree: 2}", "launch.nproc_per_node=3"],
     ("train_module.cp_config.degree", "launch.nproc_per_node"), "tp x cp x pp = 2 must divide the world size (3)"),
    (["train_module.pp_config={degree: 4, schedule: interleaved_1F1B, stages_per_rank: 8}",
      "launch.nproc_per_node=4"],
     ("train_module.pp_config.degree", "model.n_layers"), "32 pipeline stages"),
    (["train_module.pp_config={degree: 8}", "launch.nproc_per_node=8", "train_module.rank_microbatch_size=65536"],
     ("train_module.pp_config.schedule", "train_module.rank_microbatch_size", "data_loader.global_batch_size"),
     "at least 8 micro-batches per step"),
    (["train_module.pp_config={degree: 2}", "launch.nproc_per_node=4", "train_module.dp_config.name=ddp"],
     ("train_module.pp_config", "train_module.dp_config.name"), "composes with FSDP, not DDP"),
    (["train_module.pp_config={degree: 2}", "launch.nproc_per_node=2", "train_module.tp_config={degree: 2}",
      "launch.nproc_per_node=4", "train_module.dp_config.name=fsdp"],
     ("train_module.pp_config", "train_module.tp_config"), "with TP is not supported yet"),
])
def test_rule_names_its_fields(overrides, paths, words):
    cfg, found = issues(*overrides)
    assert cfg is None
    assert [i for i in found if i.paths == paths and words in i.message], found


def test_valid_meshes_pass_and_split_the_data_ranks():
    cfg, found = issues("train_module.cp_config={degree: 2}", "train_module.tp_config={degree: 2}",
                        "launch.nproc_per_node=8")
    assert found == [] and (cfg.dp_world_size, cfg.cp_degree, cfg.tp_degree) == (2, 2, 2)
    cfg, found = issues("train_module.pp_config={degree: 2, schedule: interleaved_1F1B}", "launch.nproc_per_node=4",
                        "train_module.dp_config.name=fsdp", "trainer.callbacks.downstream_evaluator.enabled=false")
    assert found == [] and cfg.dp_world_size == 2 and cfg.train_module.pp_config.num_stages == 4
    _, found = issues("train_module.pp_config={degree: 2}", "launch.nproc_per_node=2")
    assert [i.paths for i in found] == [("train_module.pp_config", "trainer.callbacks.downstream_evaluator.enabled")]


def test_section_rule_is_filed_under_its_field():
    _, found = issues("train_module.pp_config={degree: 2, schedule: 1F1B, stages_per_rank: 2}",
                      "launch.nproc_per_node=2")
    assert [i.paths for i in found] == [("train_module.pp_config.stages_per_rank",)]


def test_cli_exit_2_one_line():
    out = run_cli("--preset", BASE, "--dry-run", "--train_module.cp_config={degree: 16}", "--launch.nproc_per_node=16")
    assert out.returncode == 2 and out.stdout == ""
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "train_module.cp_config.degree" in lines[0] and "n_heads" in lines[0], lines
