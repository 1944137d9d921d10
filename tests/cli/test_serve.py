"""`olmo-tui serve`'s refusals: one line, a documented exit code, no server started."""

from __future__ import annotations

import socket

from cli_helpers import run_cli


def test_non_local_host_needs_allow_remote():
    result = run_cli("serve", "--host", "0.0.0.0", "--port", "8123", timeout=60)
    assert result.returncode == 2
    assert result.stdout == ""
    [line] = result.stderr.strip().splitlines()
    assert "--allow-remote" in line and "0.0.0.0" in line


def test_port_out_of_range_is_a_usage_error():
    result = run_cli("serve", "--port", "70000", timeout=60)
    assert result.returncode == 2
    assert "out of range" in result.stderr and result.stdout == ""


def test_a_taken_port_is_one_line_exit_3():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_cli("serve", "--port", str(port), timeout=60)
    assert result.returncode == 3
    [line] = result.stderr.strip().splitlines()
    assert f"127.0.0.1:{port}" in line and result.stdout == ""
