"""A failed run's message is the exception's last line, for runs under torchrun too: there torch
prefixes every line of an uncaught exception with "[rank0]: ", so launched runs used to record
only "exited with code 1" where `olmo-train` runs (whose own log copy has no prefix) said why."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from olmo_tui.core.runs.tailing import failure_line

FAILING_WORKER = textwrap.dedent("""
    import torch.distributed as dist
    dist.init_process_group("gloo")
    raise RuntimeError("checkpoint shard is truncated: expected 568393 bytes")
""")


def test_a_torchrun_workers_exception_is_the_runs_message(tmp_path):
    script = tmp_path / "worker.py"
    script.write_text(FAILING_WORKER)
    log = tmp_path / "stdout.log"
    with open(log, "wb") as out:  # as the local wrapper runs torchrun: both streams into the log
        code = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=1",
                               str(script)], stdout=out, stderr=subprocess.STDOUT, timeout=120).returncode
    text = log.read_text()
    assert code == 1 and "[rank0]: RuntimeError" in text and "ChildFailedError" in text  # the real shape
    assert failure_line(log) == "RuntimeError: checkpoint shard is truncated: expected 568393 bytes"


def test_an_engine_error_line_still_wins(tmp_path):
    log = tmp_path / "stdout.log"
    log.write_text("[rank0]: Traceback (most recent call last):\n[rank0]: OSError: [Errno 28] x\n"
                   "error: cannot write checkpoint step4 to /r/step4-tmp: [Errno 28 ENOSPC] No space left\n")
    assert failure_line(log).startswith("error: cannot write checkpoint step4")
