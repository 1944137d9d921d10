"""docs/GUIDE.md's "Context and pipeline parallelism": every olmo-tui command in it dry-runs as
written (exit 0), and the one-line mistake it quotes is what the CLI prints."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from cli_helpers import REPO, run_cli


def section() -> str:
    text = (REPO / "docs" / "GUIDE.md").read_text()
    start = text.index("### Context and pipeline parallelism")
    return text[start:text.index("\n### ", start + 1)]


COMMANDS = [line for line in section().splitlines() if line.startswith("olmo-tui ")]


def test_the_section_has_its_commands():
    assert len(COMMANDS) >= 5 and all("--dry-run" in c for c in COMMANDS)


@pytest.mark.parametrize("command", COMMANDS)
def test_command_dry_runs_as_written(command):
    out = run_cli(*shlex.split(command)[1:])
    assert out.returncode == 0, out.stderr
    assert re.search(r"# mesh dp\d+ x tp\d+ x cp\d+ x pp\d+", out.stderr)


def test_the_quoted_mistake_is_the_cli_line():
    out = run_cli("--preset", "llama2-271m", "--dry-run", "--launch.nproc_per_node=16",
                  "--train_module.cp_config={degree: 16}")
    assert out.returncode == 2
    quoted = re.sub(r"\s+", " ", section().split("on llama2-271m (8 heads): `")[1].split("`")[0])
    assert out.stderr.strip() == f"error: {quoted}"
