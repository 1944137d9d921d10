"""Callbacks that can be checked without training: formats, the metrics file, the registry."""

from __future__ import annotations

import json

from engine.config import resolve
from engine.train.callbacks.console_logger import format_duration, format_line
from engine.train.callbacks.metrics_writer import truncate_after
from engine.train.callbacks.registry import build_callbacks


def test_console_line_reads_like_a_sentence():
    record = {"step": 120, "total_steps": 300, "loss": 2.34123, "lr": 0.0021, "tps": 12345.6, "mfu": None,
              "data_pct": 3.2, "eta_s": 65.0, "eval/lm/loss": 2.5, "eval/lm/ppl": 12.18}
    line = format_line(record)
    assert line == ("step 120/300 (40%) | loss 2.3412 | lr 2.10e-03 | 12,346 tok/s | data 3% | "
                    "eval loss 2.5000 (ppl 12.18) | ETA 1m05s")
    assert "MFU" not in line  # unknown peak: no MFU rather than a wrong one
    assert "MFU 41.2%" in format_line({**record, "mfu": 41.21})


def test_format_duration():
    assert [format_duration(s) for s in (None, 5, 65, 3600 * 2 + 60 * 3)] == ["?", "5s", "1m05s", "2h03m"]


def test_truncate_after_drops_steps_past_the_checkpoint_and_torn_lines(tmp_path):
    path = tmp_path / "metrics.jsonl"
    lines = [json.dumps({"step": s, "loss": 1.0}) for s in (10, 20, 30, 40)]
    path.write_text("\n".join(lines) + '\n{"step": 5')  # a line cut off by a crash
    assert truncate_after(path, 20) == 3
    assert [json.loads(line)["step"] for line in path.read_text().splitlines()] == [10, 20]
    assert truncate_after(path, 20) == 0


def test_registry_builds_enabled_callbacks_and_honours_switches():
    names = lambda cfg: sorted(cb.name for cb in build_callbacks(cfg))  # noqa: E731
    cfg = resolve(preset="tiny-cpu")
    core = {"checkpointer", "config_saver", "console_logger", "garbage_collector", "lm_evaluator",
            "metrics_writer", "speed_monitor"}
    assert core <= set(names(cfg))  # on by default
    off = resolve(preset="tiny-cpu", overrides=["--trainer.callbacks.speed_monitor.enabled=false",
                                                "--trainer.no_checkpoints", "--trainer.no_evals"])
    assert not {"speed_monitor", "checkpointer", "config_saver", "lm_evaluator"} & set(names(off))
    assert {"console_logger", "garbage_collector", "metrics_writer"} <= set(names(off))
    ordered = sorted(build_callbacks(cfg), key=lambda cb: -cb.priority)
    # metric producers run before the consumers that write them out
    order = [cb.name for cb in ordered]
    assert order.index("speed_monitor") < order.index("metrics_writer") < order.index("console_logger")
    assert order.index("lm_evaluator") < order.index("metrics_writer")
