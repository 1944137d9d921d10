"""Shared fixtures: every test gets private XDG dirs so user presets, the run registry and
caches never touch the developer's real ones."""

from __future__ import annotations

import pytest

from cli_helpers import REPO, run_cli  # noqa: F401  (re-exported for older imports)


@pytest.fixture(autouse=True)
def isolated_xdg(tmp_path_factory, monkeypatch):
    base = tmp_path_factory.mktemp("xdg")
    for var in ("XDG_CONFIG_HOME", "XDG_STATE_HOME", "XDG_CACHE_HOME", "XDG_DATA_HOME"):
        path = base / var.lower()
        path.mkdir()
        monkeypatch.setenv(var, str(path))
    monkeypatch.setenv("OLMO_TUI_RUNS_DIR", str(base / "runs"))
    return base


def pytest_collection_modifyitems(config, items):
    try:
        import torch

        has_gpu = torch.cuda.is_available()
        gpu_count = torch.cuda.device_count()
    except Exception:  # torch missing or broken: no GPU tests
        has_gpu, gpu_count = False, 0
    for item in items:
        if "gpu" in item.keywords and not has_gpu:
            item.add_marker(pytest.mark.skip(reason="needs a CUDA GPU"))
        if "multi_gpu" in item.keywords and gpu_count < 2:
            item.add_marker(pytest.mark.skip(reason="needs 2 or more CUDA GPUs"))
