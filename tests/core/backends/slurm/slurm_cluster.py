"""A real SLURM cluster on this machine for the tests: munged, slurmctld and two slurmd
("nodes" n1 and n2, one host: Debian's slurm-wlm is built with multiple-slurmd support; each
slurmd listens on its own port, both at NodeAddr=127.0.0.1).

The session fixture `slurm_cluster` writes slurm.conf / cgroup.conf into a temp folder (state,
spool, logs and the munge key live there too), starts the daemons as child processes in the
foreground, waits (bounded) for both nodes to be idle, points SLURM_CONF at the config for
the whole session, and at the end cancels every job and stops the daemons it started.
It skips, naming the reason, only when the packages are missing (`.ci/run` installs them)
or the tests are not root (slurmd must be).

Kept small on purpose: proctrack/linuxproc and task/none (no cgroups), no accounting
(sacct is then unavailable: the backend falls back on scontrol and the run dir's exit.json),
scheduler and time-limit checks every second, KillWait 10 s.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import List, Set

import pytest

TOOLS = ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "scontrol", "scancel", "sinfo")
NODES = ("n1", "n2")
CPUS_PER_NODE = 4  # more than the machine has (config_overrides): several small jobs at once
START_TIMEOUT_S = 60.0


@dataclass
class SlurmCluster:
    root: Path
    conf: Path
    nodes: tuple
    procs: List[subprocess.Popen]

    def log(self, name: str) -> str:
        path = self.root / "log" / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""


def free_port(taken: Set[int]) -> int:
    """A port for a daemon that binds it itself a moment later. Probed free from 10000-19999:
    below the kernel's ephemeral range (32768 and up), so no other process's outgoing
    connection or bind to port 0 is handed it in between, as one probed with bind(0) could be;
    and below the job rendezvous ports (first_job_id). Adds it to `taken`, and never picks
    one from there."""
    for _ in range(100):
        port = 10_000 + secrets.randbelow(10_000)
        if port in taken:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        taken.add(port)
        return port
    raise RuntimeError("no free port in 10000-19999 for the test SLURM daemons")


def first_job_id(window: int = 100) -> int:
    """Where this cluster starts numbering jobs. A job's script listens for its rendezvous on
    RDZV_PORT_BASE + job id % RDZV_PORT_SPAN (backends/slurm/script.py), so clusters that all
    number from 1 (other sessions' suites on this machine) put their jobs on the same ports. A
    random start whose next `window` ports are free now keeps them apart."""
    from olmo_tui.core.backends.slurm.script import RDZV_PORT_BASE, RDZV_PORT_SPAN

    for _ in range(50):
        offset = secrets.randbelow(RDZV_PORT_SPAN - window)
        try:
            for port in range(RDZV_PORT_BASE + offset, RDZV_PORT_BASE + offset + window):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", port))
        except OSError:
            continue
        return RDZV_PORT_SPAN + offset
    raise RuntimeError(f"no {window} free ports from {RDZV_PORT_BASE} for the test jobs' rendezvous")


def write_config(root: Path, host: str) -> Path:
    for sub in ("state", "log", "munge", *(f"spool/{n}" for n in NODES)):
        (root / sub).mkdir(parents=True, exist_ok=True)
    taken: Set[int] = set()
    ctld_port = free_port(taken)
    nodes = "\n".join(
        f"NodeName={name} NodeHostname={host} NodeAddr=127.0.0.1 Port={free_port(taken)} CPUs={CPUS_PER_NODE} "
        "RealMemory=2000 State=UNKNOWN" for name in NODES)
    conf = root / "slurm.conf"
    conf.write_text(f"""\
ClusterName=olmotui-test
FirstJobId={first_job_id()}
SlurmctldHost={host}(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={root}/munge/munge.sock
SlurmctldPort={ctld_port}
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool/%n
SlurmctldPidFile={root}/slurmctld.pid
SlurmdPidFile={root}/slurmd-%n.pid
SlurmctldLogFile={root}/log/slurmctld.log
SlurmdLogFile={root}/log/slurmd-%n.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SlurmdParameters=config_overrides
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
ReturnToService=2
SchedulerParameters=sched_interval=1,bf_interval=1
MessageTimeout=10
KillWait=10
MinJobAge=600
InactiveLimit=0
Waittime=0
SlurmdTimeout=60
{nodes}
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
""")
    # 22.05 has no "disabled" cgroup plugin; nothing uses cgroups with the plugins above.
    (root / "cgroup.conf").write_text("CgroupPlugin=autodetect\n")
    return conf


def nodes_idle(env: dict) -> bool:
    try:
        out = subprocess.run(["sinfo", "--noheader", "--Node", "--format=%N %t"], capture_output=True,
                             text=True, timeout=5, env=env).stdout
    except subprocess.TimeoutExpired:
        return False
    states = dict(line.split() for line in out.splitlines() if len(line.split()) == 2)
    return all(states.get(n) == "idle" for n in NODES)


def stop(procs: List[subprocess.Popen], env: dict) -> None:
    subprocess.run(["scancel", "--full", "--partition=debug"], capture_output=True, timeout=10, env=env)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        out = subprocess.run(["squeue", "--noheader"], capture_output=True, text=True, timeout=5, env=env)
        if out.returncode != 0 or not out.stdout.strip():
            break
        time.sleep(0.5)
    for proc in reversed(procs):  # slurmd, then slurmctld, then munged
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)


@pytest.fixture(scope="session")
def slurm_cluster(tmp_path_factory):
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"SLURM is not installed ({', '.join(missing)} missing): "
                    "apt-get install slurm-wlm munge (.ci/run does)")
    if os.geteuid() != 0:
        pytest.skip("the test SLURM cluster runs slurmd, which needs root")
    root = tmp_path_factory.mktemp("slurm")
    # SLURM matches daemons to their config lines by the short host name.
    conf = write_config(root, socket.gethostname().split(".")[0])
    key = root / "munge" / "munge.key"
    key.write_bytes(secrets.token_bytes(1024))
    key.chmod(0o400)
    env = {**os.environ, "SLURM_CONF": str(conf)}
    logs = root / "log"
    procs: List[subprocess.Popen] = []

    def start(argv: List[str], name: str) -> None:
        with open(logs / f"{name}.out", "wb") as out:
            procs.append(subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT,
                                          stdin=subprocess.DEVNULL))

    munge_dir = root / "munge"
    try:
        start(["munged", "--foreground", "--force", f"--socket={munge_dir}/munge.sock", f"--key-file={key}",
               f"--log-file={logs}/munged.log", f"--pid-file={munge_dir}/munged.pid",
               f"--seed-file={munge_dir}/seed"], "munged")
        deadline = time.monotonic() + 10
        while not (munge_dir / "munge.sock").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        start(["slurmctld", "-D", "-i"], "slurmctld")
        for node in NODES:
            start(["slurmd", "-D", "-N", node], f"slurmd-{node}")
        deadline = time.monotonic() + START_TIMEOUT_S
        while not nodes_idle(env):
            dead = [p.args[0] for p in procs if p.poll() is not None]
            if dead or time.monotonic() > deadline:
                tails = "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-1500:]}" for p in logs.iterdir())
                raise RuntimeError(f"the test SLURM cluster did not come up ({'exited: ' + ', '.join(dead) if dead else 'timeout'})\n{tails}")
            time.sleep(0.5)
    except BaseException:
        stop(procs, env)
        raise
    previous = os.environ.get("SLURM_CONF")
    os.environ["SLURM_CONF"] = str(conf)
    try:
        yield SlurmCluster(root, conf, NODES, procs)
    finally:
        stop(procs, env)
        if previous is None:
            os.environ.pop("SLURM_CONF", None)
        else:
            os.environ["SLURM_CONF"] = previous
