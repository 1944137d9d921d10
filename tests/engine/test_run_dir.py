"""The run dir's contract (engine/run_dir.py): the metrics line round-trips, garbage is no
record, and no other module spells a run-dir file name or the metrics prefix by hand."""

from __future__ import annotations

import ast
import json
from pathlib import Path

from engine import run_dir
from engine.run_dir import METRICS_PREFIX, exit_record, format_metrics_line, parse_metrics_line, read_exit_record

REPO = Path(__file__).resolve().parents[2]
NAMES = [run_dir.CONFIG_FILE, run_dir.LAUNCH_RECORD, run_dir.LOG_FILE, run_dir.METRICS_FILE, run_dir.START_MARKER,
         run_dir.EXIT_RECORD, run_dir.CHECKPOINTS_DIR, run_dir.STALL_MARKER, run_dir.STACKS_DIR]


def test_a_metrics_line_round_trips_behind_a_timestamp_or_rank_tag():
    record = {"step": 3, "loss": 2.5, "tps": 1234.5, "note": "a [metrics] inside"}
    line = format_metrics_line(record)
    assert line.startswith(METRICS_PREFIX) and "\n" not in line
    assert parse_metrics_line(line) == record
    assert parse_metrics_line(f"2026-01-01 12:00:00 [rank0]: {line}") == record


def test_lines_that_are_no_metrics_record_parse_to_none():
    for line in ["", "step 3 loss 2.5", METRICS_PREFIX, METRICS_PREFIX + "{not json", METRICS_PREFIX + "[1, 2]",
                 METRICS_PREFIX + json.dumps({"loss": 1.0})]:  # no step: not a record
        assert parse_metrics_line(line) is None


def test_the_exit_record_reads_back_and_a_torn_one_reads_as_running(tmp_path):
    assert read_exit_record(tmp_path) is None
    (tmp_path / run_dir.EXIT_RECORD).write_text(json.dumps(exit_record(143, started=1.0, launcher_exit_code=1,
                                                                       cancelled=True)))
    record = read_exit_record(tmp_path)
    assert (record["exit_code"], record["launcher_exit_code"], record["cancelled"]) == (143, 1, True)
    assert record["ended"] >= record["started"]
    (tmp_path / run_dir.EXIT_RECORD).write_text('{"exit_co')
    assert read_exit_record(tmp_path) is None


def spelled_by_hand(path: Path):
    """String constants in code (docstrings left out) that are a contract name or a path ending
    in one, or hold the metrics prefix."""
    tree = ast.parse(path.read_text(), filename=str(path))
    docstrings = {id(node.value) for node in ast.walk(tree) if isinstance(node, ast.Expr)}
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            value = node.value
            if any(value == name or value.endswith("/" + name) for name in NAMES) or METRICS_PREFIX in value:
                yield f"{path.relative_to(REPO)}:{node.lineno}: {value!r}"


def test_run_dir_names_are_defined_once():
    contract = REPO / "engine" / "run_dir.py"
    found = [hit for root in ("engine", "olmo_tui") for path in sorted((REPO / root).rglob("*.py"))
             if path != contract for hit in spelled_by_hand(path)]
    assert found == []
