"""Ours vs the peer (ai2-olmo-core 3.0.0) in the same GPU job: same model, sequence length,
micro-batch and global batch, both bf16 + FSDP + torch.compile, synthetic tokens.

    python3 benchmarks/compare_peer.py a b            # cases below; results in $OUT (or /tmp)
    python3 benchmarks/compare_peer.py a:steps=20     # a case with fewer steps (both engines)
    python3 benchmarks/compare_peer.py fsdp2:peer     # 2 GPUs: ours 1 vs 2 ranks, and the peer on 2

The peer's runner is benchmarks/peer_olmo_core.py (olmo_core's public API only); the peer's
packages travel as wheels in the git-ignored .peer/whl folder (the pip download line is in
docs/BENCHMARKS.md); they are installed into /tmp/peer and put on PYTHONPATH for the peer's
process only, so our run never sees them. Prints one JSON line per run, then ours/peer ratios of tokens/s/device and
of peak memory.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PEER = REPO / ".peer"
OUT = Path(os.environ.get("OUT", "/tmp/olmo_bench"))

# name: (our preset, peer factory, seq, micro-batch, global batch tokens, steps)
CASES = {
    "a": ("llama2-271m", "llama2_271M", 1024, 16, 262144, 30),
    "a32": ("llama2-271m", "llama2_271M", 1024, 32, 262144, 30),
    "b": ("olmo2-1b", "olmo2_1B_v2", 4096, 4, 131072, 20),
    "b8": ("olmo2-1b", "olmo2_1B_v2", 4096, 8, 131072, 20),
}
# The peer's configuration (run_peer.py): no z-loss, max_grad_norm 1.0, cosine warm-up. Ours
# matches it on everything that costs time; the learning rate does not.
OURS_SAME_WORK = ["train_module.z_loss_multiplier=null"]


def run(cmd, env, name, timeout):
    print(f"=== {name}: {' '.join(cmd)}", flush=True)
    log = OUT / f"{name}.log"
    with open(log, "w") as f:
        proc = subprocess.run(cmd, env=env, stdout=f, stderr=subprocess.STDOUT, timeout=timeout, cwd=REPO)
    lines = [ln for ln in log.read_text().splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        print(f"{name} failed (rc={proc.returncode}):\n" + "\n".join(log.read_text().splitlines()[-25:]), flush=True)
        return None
    result = json.loads(lines[-1])
    print(json.dumps(result), flush=True)
    return result


def install_peer():
    target = Path("/tmp/peer")
    if not target.exists():
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile",
                        "--target", str(target), *map(str, sorted((PEER / "whl").glob("*.whl")))], check=True)
    return target


def install_ours():
    """Our pure-Python dependencies the GPU image lacks (pydantic, tomlkit), carried in .peer/ours."""
    target = Path("/tmp/ours")
    wheels = sorted((PEER / "ours").glob("*.whl"))
    if wheels and not target.exists():
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile",
                        "--target", str(target), *map(str, wheels)], check=True)
    return target


def ours(case, extra=(), nproc=1, tag="", global_tokens=None, steps=None):
    preset, _, seq, mb, gbt, default_steps = CASES[case]
    steps = steps or default_steps
    gbt = global_tokens or gbt
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = str(install_ours())
    env["PYTHONUNBUFFERED"] = "1"
    launcher = [sys.executable] if nproc == 1 else [sys.executable, "-m", "torch.distributed.run", "--standalone",
                                                    f"--nproc-per-node={nproc}"]
    cmd = launcher + ["benchmarks/throughput.py", "--preset", preset, "--seq-len", str(seq), "--micro-batch", str(mb),
                      "--global-batch-tokens", str(gbt), "--steps", str(steps)]
    for s in [*OURS_SAME_WORK, *extra]:
        cmd += ["--set", s] if "=" in s and not s.startswith("--") else [s]
    return run(cmd, env, f"ours_{case}{tag}_n{nproc}", 590)


def peer(case, nproc=1, global_tokens=None, steps=None):
    _, model, seq, mb, gbt, default_steps = CASES[case]
    steps = steps or default_steps
    gbt = global_tokens or gbt
    env = dict(os.environ, PYTHONPATH=str(install_peer()), PYTHONUNBUFFERED="1")
    launcher = [sys.executable] if nproc == 1 else [sys.executable, "-m", "torch.distributed.run", "--standalone",
                                                    f"--nproc-per-node={nproc}"]
    cmd = launcher + ["benchmarks/peer_olmo_core.py", "--model", model, "--seq-len", str(seq),
                      "--micro-batch", str(mb), "--global-batch-tokens", str(gbt), "--steps", str(steps),
                      "--json-out", str(OUT / f"peer_{case}_n{nproc}.json")]
    return run(cmd, env, f"peer_{case}_n{nproc}", 590)


def ratio(a, b, label):
    if a and b:
        line = {"compare": label, "ours_tps": a["tps_per_device"], "peer_tps": b["tps_per_device"],
                "ratio_tps": round(a["tps_per_device"] / b["tps_per_device"], 4),
                "ours_peak_gib": a["peak_mem_gib"], "peer_peak_gib": b.get("peak_mem_gib"),
                "ratio_mem": round(a["peak_mem_gib"] / b["peak_mem_gib"], 4) if b.get("peak_mem_gib") else None}
        print("RATIO " + json.dumps(line), flush=True)
        return line


def main(argv):
    OUT.mkdir(parents=True, exist_ok=True)
    summary = []
    for arg in argv:
        case, _, variant = arg.partition(":")  # e.g. "a:cudnn" or "b:cudnn,peer"
        opts = variant.split(",") if variant else []
        if case == "fsdp2":  # olmo2-1b, 4 micro-batches of 8 x 4096 per rank per step
            extra = [o for o in opts if o not in ("peer", "no1")]
            extra = [f"--sdpa={o}" if o in ("cudnn", "flash", "auto") else o for o in extra]
            one = None if "no1" in opts else ours("b", extra, 1, "", 131072)
            two = ours("b", extra, 2, "", 262144)
            if one and two:
                print("SCALING " + json.dumps({"ours_1": one["tps_per_device"], "ours_2": two["tps_per_device"],
                                               "efficiency": round(two["tps_per_device"] / one["tps_per_device"], 4)}))
            if "peer" in opts:
                p2 = peer("b", 2, 262144)
                summary.append(ratio(two, p2, "fsdp2 ours/peer (2 GPUs)"))
            continue
        steps = next((int(o[6:]) for o in opts if o.startswith("steps=")), None)
        opts = [o for o in opts if not o.startswith("steps=")]
        extra = [f"--sdpa={o}" for o in opts if o in ("cudnn", "flash", "auto")]
        extra += [o for o in opts if "=" in o]
        extra += ["--profile-steps=2"] if "profile" in opts else []
        mine = ours(case, extra, tag="_" + "_".join(o.replace("=", "-").replace(".", "-") for o in opts) if opts else "",
                    steps=steps)
        if "nopeer" not in opts:
            summary.append(ratio(mine, peer(case, steps=steps), f"{case} {variant}"))
    (OUT / "summary.json").write_text(json.dumps([s for s in summary if s], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
