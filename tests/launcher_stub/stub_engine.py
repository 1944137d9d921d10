"""A stand-in for `python -m engine` that follows docs/CONTRACTS.md (argv, metrics.jsonl,
`[metrics]` lines, checkpoints/stepN, exit codes 0/1/2/143) in a fraction of a second per
step, so the launcher's process handling (detach, exit.json, cancel, lost) is tested
without training a model. End-to-end tests use the real engine.

Behaviour is chosen by environment: STUB_STEPS (default 20), STUB_STEP_S (0.05),
STUB_FAIL_AT (raise at that step: exit 1), STUB_USER_ERROR (exit 2 before training),
STUB_IGNORE_SIGTERM (keep running: the launcher must SIGKILL after the grace period),
STUB_PRINT_ENV (print the names of environment variables starting with it).

Like the engine (engine/run.py) it holds the run-dir lock while it lives and, in a launched
run, leaves rank 0's own exit record (engine_exit.json) when it ends.
"""

import json
import os
import signal
import sys
import time
import tomllib
from pathlib import Path

from engine import run_lock
from engine.run_dir import ENGINE_EXIT_RECORD
from engine.run_marker import write_exit_record


def main() -> int:
    args = sys.argv[1:]
    run_dir = Path(args[args.index("--run-dir") + 1])
    run_lock.hold(run_dir)
    started, code = time.time(), 1
    try:
        code = train(args, run_dir)
    finally:
        write_exit_record(run_dir, code, started, name=ENGINE_EXIT_RECORD)
    return code


def train(args, run_dir: Path) -> int:
    steps = int(os.environ.get("STUB_STEPS", "20"))
    step_s = float(os.environ.get("STUB_STEP_S", "0.05"))
    if os.environ.get("STUB_USER_ERROR"):
        print("error: dataset.paths: /nonexistent/data.npy does not exist", file=sys.stderr)
        return 2
    prefix = os.environ.get("STUB_PRINT_ENV")
    if prefix:
        print("env:", sorted(k for k in os.environ if k.startswith(prefix)), flush=True)
    stop = {"requested": False}
    if os.environ.get("STUB_IGNORE_SIGTERM"):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    else:
        signal.signal(signal.SIGTERM, lambda *_: stop.update(requested=True))
    with open(args[args.index("--config") + 1], "rb") as f:
        save_folder = tomllib.load(f).get("trainer", {}).get("save_folder")
    ckpt = Path(save_folder) if save_folder else run_dir / "checkpoints"
    start = 0
    if ckpt.exists():
        done = sorted(int(p.name[4:]) for p in ckpt.iterdir() if p.name.startswith("step"))
        start = done[-1] if done else 0
        print(f"resuming from step {start}", flush=True)
    with open(run_dir / "metrics.jsonl", "a") as metrics:
        for step in range(start + 1, steps + 1):
            time.sleep(step_s)
            if os.environ.get("STUB_FAIL_AT") == str(step):
                raise RuntimeError(f"ERROR: loss is not finite at step {step}")
            record = {"step": step, "time": time.time(), "total_steps": steps, "tokens": step * 2048,
                      "loss": 5.0 / step, "lr": 1e-3, "tps": 1000.0, "mfu": None}
            metrics.write(json.dumps(record) + "\n")
            metrics.flush()
            print("[metrics] " + json.dumps(record), flush=True)
            if stop["requested"]:
                # A committed checkpoint as docs/CONTRACTS.md lays it out: shards' metadata + marker.
                (ckpt / f"step{step}" / "model_and_optim").mkdir(parents=True, exist_ok=True)
                (ckpt / f"step{step}" / "model_and_optim" / ".metadata").touch()
                (ckpt / f"step{step}" / ".complete.json").write_text(json.dumps({"step": step}))
                print(f"stopped at step {step}: final checkpoint saved", flush=True)
                return 143
    print("training finished", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
