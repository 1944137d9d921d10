"""SLURM's command-line tools, each called with an argv list and a time limit.

A missing tool or a controller that does not answer within the limit is a one-line
BackendError, never a hang: the runs screen refreshes through these from a worker thread, and
the headless CLI waits on them. Nothing here goes through a shell.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from typing import Dict, List, Optional

from ..base import BackendError

DEFAULT_TIMEOUT_S = 10.0
# Field separator for squeue's --format: a character no job name, state or node list holds.
SEP = "\x1f"


@dataclass(frozen=True)
class JobInfo:
    job_id: str
    state: str  # SLURM's word: PENDING, RUNNING, COMPLETED, TIMEOUT, ...
    partition: Optional[str] = None
    nodes: Optional[str] = None  # compressed node list, e.g. n[1-2]
    reason: Optional[str] = None  # why pending / how it ended, as SLURM says it
    exit_code: Optional[int] = None  # the batch script's exit code (terminal states only)
    restarts: Optional[int] = None


def run(argv: List[str], timeout_s: float = DEFAULT_TIMEOUT_S,
        env: Optional[Dict[str, str]] = None) -> subprocess.CompletedProcess:
    """Run one SLURM command; BackendError when it is missing, hangs or fails."""
    tool = argv[0]
    if shutil.which(tool) is None:
        raise BackendError(f"`{tool}` is not installed or not on PATH: SLURM runs need the SLURM client tools")
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s, stdin=subprocess.DEVNULL,
                              env=env)
    except subprocess.TimeoutExpired:
        raise BackendError(f"`{tool}` did not answer within {timeout_s:g} s (is slurmctld reachable?)") from None
    except OSError as exc:
        raise BackendError(f"could not run `{tool}`: {exc.strerror or exc}") from None
    if done.returncode != 0:
        last = (done.stderr.strip() or done.stdout.strip()).splitlines()
        raise BackendError(f"`{' '.join(argv[:2])}` failed: {last[-1] if last else f'exit code {done.returncode}'}")
    return done


def submit(script_path: str, env: Optional[Dict[str, str]] = None, timeout_s: float = 30.0) -> str:
    """sbatch --parsable: prints `jobid[;cluster]`. `env`: sbatch's environment, which the job
    inherits (sbatch's default --export=ALL): how secrets reach the job without a file."""
    out = run(["sbatch", "--parsable", script_path], timeout_s, env).stdout.strip()
    job_id = out.split(";", 1)[0]
    if not job_id.isdigit():
        raise BackendError(f"sbatch printed {out!r} instead of a job id")
    return job_id


def squeue(job_id: str, timeout_s: float = DEFAULT_TIMEOUT_S) -> Optional[JobInfo]:
    """The job while SLURM still queues or runs it; None once squeue no longer lists it."""
    fmt = SEP.join(["%i", "%T", "%P", "%N", "%r"])
    try:
        out = run(["squeue", "--noheader", "--jobs", job_id, f"--format={fmt}"], timeout_s).stdout
    except BackendError as exc:
        if "Invalid job id" in str(exc):  # squeue says so for a job it has already purged
            return None
        raise
    for line in out.splitlines():
        fields = line.split(SEP)
        if len(fields) == 5 and fields[0] == job_id:
            return JobInfo(job_id, fields[1], fields[2] or None, fields[3] or None,
                           None if fields[4] in ("", "None") else fields[4])
    return None


def parse_scontrol(text: str) -> Dict[str, str]:
    """`scontrol show job -o` prints one line of Key=Value pairs (values without spaces, except
    a few at the end we do not read)."""
    fields: Dict[str, str] = {}
    for token in text.split():
        key, sep, value = token.partition("=")
        if sep and key not in fields:
            fields[key] = value
    return fields


def scontrol_job(job_id: str, timeout_s: float = DEFAULT_TIMEOUT_S) -> Optional[JobInfo]:
    """The job as slurmctld remembers it (MinJobAge seconds after its end); None when forgotten."""
    try:
        out = run(["scontrol", "show", "job", "-o", job_id], timeout_s).stdout
    except BackendError as exc:
        if "Invalid job id" in str(exc):
            return None
        raise
    f = parse_scontrol(out)
    if f.get("JobId") != job_id:
        return None
    code = f.get("ExitCode", "")
    return JobInfo(job_id, f.get("JobState", "UNKNOWN"), f.get("Partition") or None,
                   None if f.get("NodeList") in (None, "", "(null)") else f["NodeList"],
                   None if f.get("Reason") in (None, "None") else f["Reason"],
                   int(code.split(":")[0]) if code.split(":")[0].isdigit() else None,
                   int(f["Restarts"]) if f.get("Restarts", "").isdigit() else None)


def sacct_job(job_id: str, timeout_s: float = DEFAULT_TIMEOUT_S) -> Optional[JobInfo]:
    """The job from the accounting database; None when there is none (no slurmdbd) or no row."""
    fmt = "JobID,State,Partition,NodeList,ExitCode"
    try:
        out = run(["sacct", "--noheader", "--parsable2", "--jobs", job_id, "--format", fmt], timeout_s).stdout
    except BackendError:
        return None  # accounting disabled is the common case on small clusters
    for line in out.splitlines():
        fields = line.split("|")
        if len(fields) == 5 and fields[0] == job_id:
            state = fields[1].split()[0]  # "CANCELLED by 0" -> CANCELLED
            code = fields[4].split(":")[0]
            return JobInfo(job_id, state, fields[2] or None, fields[3] or None, None,
                           int(code) if code.isdigit() else None)
    return None


def job_info(job_id: str, timeout_s: float = DEFAULT_TIMEOUT_S) -> Optional[JobInfo]:
    """squeue first (cheap, live), then scontrol (recently ended), then sacct (history)."""
    return squeue(job_id, timeout_s) or scontrol_job(job_id, timeout_s) or sacct_job(job_id, timeout_s)


def scancel(job_id: str, signal_name: Optional[str] = None, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
    """Without a signal: SLURM's own stop (SIGTERM to every step and the script, SIGKILL after
    the cluster's KillWait). With one: only the job's steps (the ranks) get it."""
    argv = ["scancel"] + ([f"--signal={signal_name}"] if signal_name else []) + [job_id]
    run(argv, timeout_s)
