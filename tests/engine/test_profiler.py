"""The profiler callback: a Chrome trace per rank in the run dir, with forward and backward events
of the scheduled steps, written by a real (small) training run on CPU."""

from __future__ import annotations

import json

from engine.config.trainer import ProfilerConfig
from engine.train.callbacks.profiler import recorded_steps, trace_path

import tiny_run

PROFILE = ["--trainer.callbacks.profiler.enabled=true", "--trainer.callbacks.profiler.skip_first=1",
           "--trainer.callbacks.profiler.wait=0", "--trainer.callbacks.profiler.warmup=1",
           "--trainer.callbacks.profiler.active=2"]


def test_schedule_arithmetic_matches_the_docs(tmp_path):
    default = ProfilerConfig()
    assert recorded_steps(default, 1) == range(9, 12)  # skip 5, wait 1, warm up 2, record 3
    two = ProfilerConfig(skip_first=0, wait=1, warmup=1, active=2, repeat=2)
    assert list(recorded_steps(two, 1)) == [3, 4] and list(recorded_steps(two, 2)) == [7, 8]
    assert recorded_steps(default, 1, start_step=100) == range(109, 112)  # resumed at step 100
    assert trace_path(tmp_path, 3, 1) == tmp_path / "profiler" / "rank3.trace.json"
    assert trace_path(tmp_path, 0, 2).name == "rank0.cycle2.trace.json"


def test_trace_parses_and_holds_forward_and_backward_of_the_recorded_steps(tmp_path, capsys):
    run_dir = tmp_path / "run"
    assert tiny_run.run(tiny_run.small_config(*PROFILE, steps=5), run_dir) == 0
    trace = run_dir / "profiler" / "rank0.trace.json"
    out = capsys.readouterr().out
    assert f"trace of steps 3-4 written to {trace}" in out  # the path is printed in the log
    assert [p.name for p in trace.parent.iterdir()] == ["rank0.trace.json"]  # no temp file left

    events = json.loads(trace.read_text())["traceEvents"]
    names = [e.get("name", "") for e in events]
    # The profiler numbers steps from 0: training steps 3 and 4 are ProfilerStep#2 and #3.
    assert {n for n in names if n.startswith("ProfilerStep#")} == {"ProfilerStep#2", "ProfilerStep#3"}
    forward = [e for e in events if e.get("name") in ("aten::embedding", "aten::linear")]
    backward = [e for e in events if e.get("name", "").startswith("autograd::engine::evaluate_function: ")
                and e["name"].endswith("Backward0")]
    assert forward and backward
    # Within the first recorded step, the forward pass starts before any backward op.
    step = next(e for e in events if e.get("name") == "ProfilerStep#2")
    inside = lambda e: step["ts"] <= e["ts"] <= step["ts"] + step["dur"]  # noqa: E731
    assert min(e["ts"] for e in forward if inside(e)) < min(e["ts"] for e in backward if inside(e))


def test_a_run_too_short_for_the_schedule_says_so_and_writes_nothing(tmp_path, capsys):
    run_dir = tmp_path / "run"
    assert tiny_run.run(tiny_run.small_config("--trainer.callbacks.profiler.enabled=true", steps=2), run_dir) == 0
    assert "before the first recorded step (9); no trace written" in capsys.readouterr().out
    assert not (run_dir / "profiler").exists()
