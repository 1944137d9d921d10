"""Run notes, tags and archive: through the registry (a real SQLite file, migrated), the CLI
(`olmo-tui annotate`, `olmo-tui runs --tag / --all`) and back."""

from __future__ import annotations

import json
import time

from cli_helpers import run_cli
from olmo_tui.core.runs.registry import Registry, RunRecord


def _runs(*args):
    out = run_cli("runs", "--json", *args)
    assert out.returncode == 0, out.stderr
    return [r["id"] for r in json.loads(out.stdout)]


def test_notes_tags_archive_round_trip(isolated_xdg, tmp_path):
    registry = Registry()
    for i in range(3):
        registry.add(RunRecord(id=f"r{i}", name=f"run{i}", backend="local", run_dir=str(tmp_path / f"r{i}"),
                               status="succeeded", exit_code=0, created=time.time() + i))
    out = run_cli("annotate", "r1", "--note", "lr too high?", "--tag", "ablation", "--tag", "lr")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["tags"] == ["ablation", "lr"]
    got = Registry().get("r1")
    assert (got.notes, got.tags, got.archived) == ("lr too high?", ["ablation", "lr"], False)
    assert _runs("--tag", "ablation") == ["r1"] and _runs("--tag", "ablation", "--tag", "nope") == []

    assert run_cli("annotate", "r2", "--archive").returncode == 0
    assert _runs() == ["r1", "r0"] and _runs("--all") == ["r2", "r1", "r0"]
    assert "r2" not in run_cli("runs").stdout
    assert run_cli("annotate", "r2", "--unarchive").returncode == 0 and _runs() == ["r2", "r1", "r0"]

    assert run_cli("annotate", "r1", "--untag", "lr", "--note", "").returncode == 0
    got = Registry().get("r1")
    assert (got.notes, got.tags) == (None, ["ablation"])
    bad = run_cli("annotate", "r1", "--tag", "a,b")
    assert bad.returncode == 2 and bad.stderr.strip().splitlines() == ["error: --tag: 'a,b' is not a tag (1-64 characters, no comma)"]
    assert run_cli("annotate", "nope", "--archive").returncode == 2
