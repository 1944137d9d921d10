"""The sbatch job script of a SLURM run: one `srun` task per node, each running torchrun.

The shape (every line explained in docs/GUIDE.md, "Launching on SLURM"):

- #SBATCH lines from launch.slurm; output (stdout and stderr of every node) goes to the run
  dir's stdout.log in append mode, so a requeued attempt adds to the log instead of erasing it
  and the monitor follows it like a local run's.
- `--signal=B:USR1@N`: N seconds before the time limit SLURM sends SIGUSR1 to this batch shell,
  which forwards it to srun, which hands it to the tasks; the engine's ranks agree to stop,
  write a checkpoint and exit 138 (128 + SIGUSR1).
- Each node's task is `bash -c 'trap "" USR1; exec torchrun ...'`: torchrun ignores SIGUSR1
  (an ignored signal stays ignored across exec, and torchrun installs no handler of its own for
  it), which would otherwise kill it; the ranks install their own handler as soon as the engine
  starts (engine/stop_request.py), so a warning during start-up is kept, not lost. SIGTERM
  (scancel, preemption, requeue) is torchrun's to forward, as on one machine.
- The rendezvous: c10d on the first host of `scontrol show hostnames $SLURM_JOB_NODELIST`
  (its NodeAddr), port 20000 + job id mod 10000, rendezvous id = the job id, so every attempt
  of a requeued job meets on the same endpoint and a new job on another.
- At the end the script writes exit.json (exit code, job id, attempt, whether the time-limit
  signal came) into the run dir, the record refresh() reads once SLURM has forgotten the job.
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Dict, List

from engine.run_dir import CONFIG_FILE, EXIT_RECORD, LOG_FILE

STOP_SIGNAL = "USR1"
RDZV_PORT_BASE = 20000
RDZV_PORT_SPAN = 10000


def sbatch_options(cfg, run_id: str, run_dir: Path) -> List[str]:
    slurm = cfg.launch.slurm
    options = [
        f"--job-name={run_id}",
        f"--output={run_dir / LOG_FILE}",
        "--open-mode=append",
        f"--nodes={slurm.nodes}",
        "--ntasks-per-node=1",
        f"--signal=B:{STOP_SIGNAL}@{slurm.signal_before_limit_s}",
        "--requeue" if slurm.requeue else "--no-requeue",
    ]
    for name, value in (("partition", slurm.partition), ("account", slurm.account), ("qos", slurm.qos),
                        ("cpus-per-task", slurm.cpus_per_task), ("mem", slurm.mem),
                        ("time", slurm.time_limit), ("constraint", slurm.constraint)):
        if value is not None:
            options.append(f"--{name}={value}")
    if slurm.gpus_per_node:
        options.append(f"--gpus-per-node={slurm.gpus_per_node}")
    if slurm.exclusive:
        options.append("--exclusive")
    options.extend(slurm.extra_sbatch)
    return options


class ScriptVars(str):
    """An argument of the script's own making that names the script's variables ($SLURM_NNODES,
    $head_addr): double-quoted, so bash expands them. Every other argument (paths, the run name:
    anything a user chose) is single-quoted by shlex.quote, so a `$(...)` or backquote in a runs
    root stays text."""


def torchrun_argv(cfg, run_dir: Path, python: str, engine_module: str = "engine") -> List[str]:
    """The per-node command after the rendezvous variables ($nodes, $head_addr, $port) are set."""
    return [
        python, "-m", "torch.distributed.run",
        ScriptVars("--nnodes=$SLURM_NNODES"), f"--nproc-per-node={cfg.launch.nproc_per_node}",
        "--rdzv-backend=c10d", ScriptVars("--rdzv-endpoint=$head_addr:$port"), ScriptVars("--rdzv-id=$SLURM_JOB_ID"),
        "-m", engine_module, cfg.run_name,
        "--config", str(run_dir / CONFIG_FILE), "--run-dir", str(run_dir),
    ]


def _quote(arg: str) -> str:
    return f'"{arg}"' if isinstance(arg, ScriptVars) else shlex.quote(arg)


def build_script(cfg, run_id: str, run_dir: Path, python: str, env: Dict[str, str],
                 engine_module: str = "engine") -> str:
    """The whole job script as text. `env`: plain variables exported before torchrun (never
    secrets: the script is a file in the run dir)."""
    slurm = cfg.launch.slurm
    lines = ["#!/bin/bash", f"# olmo-tui job script for run {run_id}; printed by --dry-run, kept as job.sbatch"]
    lines += [f"#SBATCH {option}" for option in sbatch_options(cfg, run_id, run_dir)]
    lines += ["", "set -uo pipefail", f"cd {shlex.quote(str(run_dir))}"]
    if slurm.setup:
        lines += ["# launch.slurm.setup", *slurm.setup]
    lines += [f"export {name}={shlex.quote(value)}" for name, value in sorted(env.items())]
    lines += [
        'head_node=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)',
        'head_addr=$(scontrol show node "$head_node" -o | sed -n "s/.* NodeAddr=\\([^ ]*\\).*/\\1/p")',
        'head_addr=${head_addr:-$head_node}',
        f"port=$(( {RDZV_PORT_BASE} + SLURM_JOB_ID % {RDZV_PORT_SPAN} ))",
        'echo "[olmo-tui] job $SLURM_JOB_ID attempt ${SLURM_RESTART_COUNT:-0}: $SLURM_NNODES node(s)'
        ' ($SLURM_JOB_NODELIST), rendezvous $head_addr:$port"',
        f"rm -f {EXIT_RECORD}",
        "time_limit_signal=false",
        "on_time_limit() {",
        '  time_limit_signal=true',
        f'  echo "[olmo-tui] SIG{STOP_SIGNAL} from SLURM (time limit in {slurm.signal_before_limit_s} s or less):'
        ' checkpoint and stop"',
        f'  kill -{STOP_SIGNAL} "$step" 2>/dev/null',
        "}",
        f"trap on_time_limit {STOP_SIGNAL}",
        "# one task per node, each running torchrun as a module of the job's python (the one that has",
        "# torch), with a c10d rendezvous on the first node",
        "srun --nodes=\"$SLURM_NNODES\" --ntasks-per-node=1 --kill-on-bad-exit=1 \\",
        f"  bash -c 'trap \"\" {STOP_SIGNAL}; exec \"$@\"' olmo-tui-node \\",
        "  " + " ".join(_quote(a) for a in torchrun_argv(cfg, run_dir, python, engine_module)) + " &",
        "step=$!",
        "# `wait` returns early when a trapped signal arrives: wait again until the step has ended",
        'while true; do wait "$step"; code=$?; kill -0 "$step" 2>/dev/null || break; done',
        'printf \'{"exit_code": %d, "job_id": "%s", "restart_count": %d, "time_limit_signal": %s, "ended": %s}\\n\' \\',
        '  "$code" "$SLURM_JOB_ID" "${SLURM_RESTART_COUNT:-0}" "$time_limit_signal" "$(date +%s)" > '
        f".{EXIT_RECORD}.tmp",
        f"mv .{EXIT_RECORD}.tmp {EXIT_RECORD}",
        'exit "$code"',
    ]
    return "\n".join(lines) + "\n"
