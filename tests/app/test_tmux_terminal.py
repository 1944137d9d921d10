"""The app in a real terminal: scripts/tmux_check.sh starts `python -m olmo_tui` in tmux at
80x24, drives it with send-keys and captures the panes. Skips cleanly where tmux is absent
(install it with `apt-get install -y tmux` to run this check)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "tmux_check.sh"


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux not installed")
def test_browser_and_editor_in_tmux_at_80x24(tmp_path):
    result = subprocess.run(["bash", str(SCRIPT), str(tmp_path)], capture_output=True, text=True, timeout=120,
                            env={**__import__("os").environ, "PYTHON": sys.executable})
    if result.returncode == 77:
        pytest.skip("tmux not installed")
    assert result.returncode == 0, result.stdout + result.stderr
    browser = (tmp_path / "browser.txt").read_text().splitlines()
    editor = (tmp_path / "editor.txt").read_text().splitlines()
    assert len(browser) <= 24 and max(map(len, browser)) <= 80
    assert any("tiny-cpu" in line for line in browser)
    assert any("layers x width" in line for line in browser)
    assert any("Filter" in line and "Launch" in line for line in browser)  # the footer's keys
    assert any("editing preset tiny-cpu" in line for line in editor)
    assert any("valid config" in line for line in editor)
    assert any("d_model" in line and "128" in line for line in editor)
    assert any("FLOPs/token" in line for line in editor)
