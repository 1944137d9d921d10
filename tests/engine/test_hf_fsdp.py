"""to-hf of a checkpoint written by 2 FSDP processes: a real 2-process torchrun of olmo-train
(gloo on CPU, FSDP2 shards every weight over both ranks) fine-tunes converted OLMo-2 weights for
a few steps; `convert to-hf` then gathers the shards in one process, and the HF model computes
what the engine computes when it loads that checkpoint itself (its resume path, 2 -> 1 ranks)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("transformers")

from hf_helpers import engine_logits_like_the_trainer, hf_logits, make_hf_model, random_ids  # noqa: E402

from engine.hf.cli import main_convert  # noqa: E402
from engine.hf.engine_ckpt import read_checkpoint_config  # noqa: E402

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_to_hf_of_an_fsdp_checkpoint_written_by_two_processes(tmp_path):
    hf_dir, converted, run_dir, published = (tmp_path / "hf", tmp_path / "engine", tmp_path / "fsdp",
                                             tmp_path / "published")
    make_hf_model(hf_dir, "olmo2", seed=5)
    assert main_convert(["from-hf", str(hf_dir), str(converted), "--no-validate"]) == 0

    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           "-m", "engine", "fsdp", "--config", str(converted / "config.toml"), "--run-dir", str(run_dir),
           "--launch.nproc_per_node=2", "--train_module.dp_config.name=fsdp",
           "--data_loader.global_batch_size=512", "--train_module.rank_microbatch_size=256",
           "--trainer.max_duration=3 steps", "--trainer.callbacks.lm_evaluator.enabled=false"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, env=env, timeout=400)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "2 x cpu" in result.stdout

    step = run_dir / "checkpoints" / "step3"
    assert json.loads((step / ".complete.json").read_text())["world_size"] == 2
    import torch.distributed.checkpoint as dcp

    metadata = dcp.FileSystemReader(str(step / "model_and_optim")).read_metadata().state_dict_metadata
    w_q = metadata["model.blocks.0.attention.w_q.weight"]
    assert len(w_q.chunks) == 2 and list(w_q.size) == [64, 64]  # sharded: half the rows on each rank

    assert main_convert(["to-hf", str(run_dir), str(published)]) == 0
    ids = random_ids()
    model_cfg = read_checkpoint_config(step).model
    ours = engine_logits_like_the_trainer(step, model_cfg, ids)
    theirs = hf_logits(published, ids)
    assert (theirs - ours).abs().max().item() < 1e-4
    assert (theirs - hf_logits(hf_dir, ids)).abs().max().item() > 1e-3  # the 3 steps did change it
