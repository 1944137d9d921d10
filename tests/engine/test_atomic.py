"""engine.atomic: the one atomic write of the engine and olmo_tui.core."""

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from engine.atomic import atomic_file, atomic_path, write_atomic, write_json_atomic

REPO = Path(__file__).resolve().parents[2]


def leftovers(folder: Path, name: str):
    return sorted(p.name for p in folder.iterdir() if p.name != name)


def test_write_replaces_whole_and_leaves_no_temp(tmp_path):
    target = tmp_path / "config.toml"
    target.write_text("old\n")
    write_atomic(target, "new\n")
    assert target.read_text() == "new\n"
    write_atomic(target, b"\x00\x01", commit=True)
    assert target.read_bytes() == b"\x00\x01"
    write_json_atomic(target, {"a": 1})
    assert target.read_text() == '{\n  "a": 1\n}\n'
    assert leftovers(tmp_path, "config.toml") == []


def test_a_failed_write_keeps_the_old_file(tmp_path):
    target = tmp_path / "exit.json"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_file(target) as handle:
            handle.write("half of the new")
            raise RuntimeError("cut off")
    assert target.read_text() == "old"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as temp:
            temp.write_text("half")
            raise RuntimeError("cut off")
    assert target.read_text() == "old"
    assert leftovers(tmp_path, "exit.json") == []


def test_atomic_path_hands_a_file_name_to_writers_that_want_one(tmp_path):
    target = tmp_path / "trace.json"
    with atomic_path(target) as temp:
        assert temp.parent == tmp_path and temp != target
        temp.write_text("{}")
        assert not target.exists()
    assert target.read_text() == "{}"
    assert leftovers(tmp_path, "trace.json") == []


def test_permissions_follow_the_umask_not_mkstemp(tmp_path):
    old = os.umask(0o027)
    try:
        import engine.atomic as atomic

        atomic._umask = None  # read again under this umask
        write_atomic(tmp_path / "f", "x")
    finally:
        os.umask(old)
        atomic._umask = None
    assert (tmp_path / "f").stat().st_mode & 0o777 == 0o640


def test_two_writers_in_threads_never_mix(tmp_path):
    """A fixed temp name made two writers truncate each other's file; unique names cannot."""
    target = tmp_path / "state.json"
    payloads = {k: (str(k) * 50_000) for k in range(2)}
    errors = []

    def writer(k):
        try:
            for _ in range(20):
                write_atomic(target, payloads[k])
        except Exception as exc:  # pragma: no cover - the failure being tested for
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(k,)) for k in payloads]
    for t in threads:
        t.start()
    seen = set()
    while any(t.is_alive() for t in threads):
        if target.exists():
            seen.add(target.read_text())
    for t in threads:
        t.join()
    assert errors == []
    assert seen <= set(payloads.values()) and target.read_text() in payloads.values()
    assert leftovers(tmp_path, "state.json") == []


def test_two_writer_processes_never_mix(tmp_path):
    target = tmp_path / "exit.json"
    code = (
        "import sys; from engine.atomic import write_atomic\n"
        "for i in range(20): write_atomic(sys.argv[1], sys.argv[2] * 50_000, commit=i % 2 == 0)\n"
    )
    procs = [subprocess.Popen([sys.executable, "-c", code, str(target), letter], cwd=REPO) for letter in "ab"]
    seen = set()
    while any(p.poll() is None for p in procs):
        if target.exists():
            seen.add(target.read_text())
    assert [p.wait() for p in procs] == [0, 0]
    whole = {"a" * 50_000, "b" * 50_000}
    assert seen <= whole and target.read_text() in whole
    assert leftovers(tmp_path, "exit.json") == []
