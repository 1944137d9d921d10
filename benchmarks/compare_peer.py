"""Ours vs the peer (ai2-olmo-core 3.0.0) in the same GPU job: same model, sequence length,
micro-batch and global batch, both bf16 + FSDP + torch.compile, synthetic tokens.

    python3 benchmarks/compare_peer.py a b            # cases below; results in $OUT (or /tmp)
    python3 benchmarks/compare_peer.py a:steps=20     # a case with fewer steps (both engines)
    python3 benchmarks/compare_peer.py --repeats 3 q g b8 a32   # each side 3 times, alternating
    python3 benchmarks/compare_peer.py q:liger        # ours with liger-kernel's head + loss
    PEER_SITE=DIR python3 benchmarks/compare_peer.py --tiny q g   # CPU smoke run: 2 layers, small vocab,
                                                     # no compile; DIR holds olmo_core and its deps
    python3 benchmarks/compare_peer.py fsdp2:peer     # 2 GPUs: ours 1 vs 2 ranks, and the peer on 2

The peer's runner is benchmarks/peer_olmo_core.py (olmo_core's public API only); the peer's
packages travel as wheels in the git-ignored .peer/whl folder (the pip download line is in
docs/BENCHMARKS.md); they are installed into /tmp/peer and put on PYTHONPATH for the peer's
process only, so our run never sees them. Prints one JSON line per run, then ours/peer ratios of tokens/s/device and
of peak memory. With --repeats R each case runs R rounds, ours and the peer alternating (the
side that goes first alternates too); the summary gives each side's median and spread
(min..max) of tokens/s, peak memory and time to the first step, and calls a ratio whose
distance from 1 is inside the two sides' spreads parity.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PEER = REPO / ".peer"
OUT = Path(os.environ.get("OUT", "/tmp/olmo_bench"))

# name: (our preset, peer factory, seq, micro-batch, global batch tokens, steps)
CASES = {
    "a": ("llama2-271m", "llama2_271M", 1024, 16, 262144, 30),
    "a32": ("llama2-271m", "llama2_271M", 1024, 32, 262144, 15),
    "b": ("olmo2-1b", "olmo2_1B_v2", 4096, 4, 131072, 20),
    "b8": ("olmo2-1b", "olmo2_1B_v2", 4096, 8, 131072, 15),
    "q": ("qwen3-0.6b", "qwen3_0_6B", 4096, 4, 65536, 15),
    "g": ("gemma3-1b", "gemma3_like", 4096, 4, 65536, 15),
}
# The peer's factory arguments that give our preset's exact shape (parameter counts agree).
# qwen3_0_6B is Qwen3-0.6B already; only the embedding rows (151,936, the release's) are set.
# olmo_core's gemma3_1B is not Gemma-3 1B's shape (d 2304, 8/4 heads, window 1024), so the
# peer builds gemma3_like with the release's: d 1152, 4/1 heads of 256, MLP 6912, window 512,
# tied embeddings (its default ties none). The token files hold ids below the tokenizer's size.
PEER_SHAPE = {
    "q": ["--vocab-size", "151936", "--token-vocab", "151669"],
    "g": ["--vocab-size", "262144", "--token-vocab", "262144", "--model-kwargs", json.dumps(
        {"d_model": 1152, "n_layers": 26, "n_heads": 4, "n_kv_heads": 1, "hidden_size": 6912, "head_dim": 256,
         "local_window_size": 512, "tie_word_embeddings": True})],
}
# --tiny: the same cases cut to run on a CPU in seconds (checks the script, not speed).
TINY_OURS = ["--seq-len", "1024", "--micro-batch", "1", "--global-batch-tokens", "2048", "--steps", "3",
             "--skip-steps", "1", "--no-compile", "--set", "model.n_layers=2", "--set", "model.vocab_size=1024",
             "--set", "dataset.tokenizer.vocab_size=1000", "--set", "dataset.tokenizer.eos_token_id=0",
             "--set", "dataset.tokenizer.pad_token_id=0"]
TINY_PEER = ["--seq-len", "1024", "--micro-batch", "1", "--global-batch-tokens", "2048", "--steps", "3",
             "--skip-steps", "1", "--no-compile", "--n-layers", "2", "--vocab-size", "1024", "--token-vocab", "1000"]
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
    target = Path(os.environ.get("PEER_SITE", "/tmp/peer"))
    if not target.exists():
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile",
                        "--target", str(target), *map(str, sorted((PEER / "whl").glob("*.whl")))], check=True)
    return target


def install_ours():
    """Our Python dependencies the GPU image lacks (pydantic, tomlkit, liger-kernel), carried in .peer/ours."""
    target = Path("/tmp/ours")
    wheels = sorted((PEER / "ours").glob("*.whl"))
    if wheels and not target.exists():
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile",
                        "--target", str(target), *map(str, wheels)], check=True)
    return target


def ours(case, extra=(), nproc=1, tag="", global_tokens=None, steps=None, tiny=False):
    preset, _, seq, mb, gbt, default_steps = CASES[case]
    steps = steps or default_steps
    gbt = global_tokens or gbt
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = str(install_ours())
    env["PYTHONUNBUFFERED"] = "1"
    launcher = [sys.executable] if nproc == 1 else [sys.executable, "-m", "torch.distributed.run", "--standalone",
                                                    f"--nproc-per-node={nproc}"]
    shape = TINY_OURS if tiny else ["--seq-len", str(seq), "--micro-batch", str(mb), "--global-batch-tokens", str(gbt),
                                    "--steps", str(steps)]
    cmd = launcher + ["benchmarks/throughput.py", "--preset", preset, *shape]
    for s in [*OURS_SAME_WORK, *extra]:
        cmd += ["--set", s] if "=" in s and not s.startswith("--") else [s]
    return run(cmd, env, f"ours_{case}{tag}_n{nproc}", 590)


def peer(case, nproc=1, global_tokens=None, steps=None, tag="", tiny=False):
    _, model, seq, mb, gbt, default_steps = CASES[case]
    steps = steps or default_steps
    gbt = global_tokens or gbt
    env = dict(os.environ, PYTHONPATH=str(install_peer()), PYTHONUNBUFFERED="1")
    launcher = [sys.executable] if nproc == 1 else [sys.executable, "-m", "torch.distributed.run", "--standalone",
                                                    f"--nproc-per-node={nproc}"]
    shape = ["--seq-len", str(seq), "--micro-batch", str(mb), "--global-batch-tokens", str(gbt), "--steps", str(steps)]
    # --tiny's arguments come last: argparse keeps the last value of a repeated option.
    cmd = launcher + ["benchmarks/peer_olmo_core.py", "--model", model, *shape, *PEER_SHAPE.get(case, []),
                      *(TINY_PEER if tiny else []), "--json-out", str(OUT / f"peer_{case}{tag}_n{nproc}.json")]
    return run(cmd, env, f"peer_{case}{tag}_n{nproc}", 590)


def ratio(a, b, label):
    if a and b:
        line = {"compare": label, "ours_tps": a["tps_per_device"], "peer_tps": b["tps_per_device"],
                "ratio_tps": round(a["tps_per_device"] / b["tps_per_device"], 4),
                "ours_peak_gib": a["peak_mem_gib"], "peer_peak_gib": b.get("peak_mem_gib"),
                "ratio_mem": round(a["peak_mem_gib"] / b["peak_mem_gib"], 4) if b.get("peak_mem_gib") else None}
        print("RATIO " + json.dumps(line), flush=True)
        return line


def spread_summary(label, mine, theirs):
    """Median and min..max of each side over repeated runs; parity when the ratio of medians is
    within the larger relative spread of the two sides."""
    mine, theirs = [r for r in mine if r], [r for r in theirs if r]
    if not mine or not theirs:
        return None

    def stats(runs, key):
        values = [r[key] for r in runs if r.get(key) is not None]
        return {"median": statistics.median(values), "min": min(values), "max": max(values)} if values else None

    out = {"compare": label, "runs": [len(mine), len(theirs)]}
    for key in ("tps_per_device", "peak_mem_gib", "first_step_s", "process_to_first_step_s"):
        out[key] = {"ours": stats(mine, key), "peer": stats(theirs, key)}
    o, p = out["tps_per_device"]["ours"], out["tps_per_device"]["peer"]
    out["ratio_tps"] = round(o["median"] / p["median"], 4)
    spread = max((o["max"] - o["min"]) / o["median"], (p["max"] - p["min"]) / p["median"])
    out["spread"] = round(spread, 4)
    out["verdict"] = "parity" if abs(out["ratio_tps"] - 1) <= spread else ("ahead" if out["ratio_tps"] > 1 else "behind")
    om, pm = out["peak_mem_gib"]["ours"], out["peak_mem_gib"]["peer"]
    out["ratio_mem"] = round(om["median"] / pm["median"], 4) if om and pm and pm["median"] else None
    print("SUMMARY " + json.dumps(out), flush=True)
    return out


def main(argv):
    OUT.mkdir(parents=True, exist_ok=True)
    summary = []
    repeats, tiny = 1, "--tiny" in argv
    if "--repeats" in argv:
        at = argv.index("--repeats")
        repeats = int(argv[at + 1])
        argv = argv[:at] + argv[at + 2:]
    argv = [a for a in argv if a != "--tiny"]
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
        extra += [f"--head-loss={o}" for o in opts if o in ("chunked", "liger")]
        extra += [o for o in opts if "=" in o]
        extra += ["--profile-steps=1"] if "profile" in opts else []
        tag = "_" + "_".join(o.replace("=", "-").replace(".", "-") for o in opts) if opts else ""
        mine_runs, peer_runs = [], []
        for r in range(repeats):
            rtag = f"{tag}_r{r}" if repeats > 1 else tag
            # Alternate who goes first, so a drift over the job (clocks, heat) hits both sides.
            order = ["ours", "peer"] if r % 2 == 0 else ["peer", "ours"]
            for side in order:
                if side == "ours":  # a profiled step (after the timed window) in the first round only
                    this = extra if r == 0 else [e for e in extra if not e.startswith("--profile-steps")]
                    mine_runs.append(ours(case, this, tag=rtag, steps=steps, tiny=tiny))
                elif "nopeer" not in opts:
                    peer_runs.append(peer(case, steps=steps, tag=rtag, tiny=tiny))
            if "nopeer" not in opts:
                summary.append(ratio(mine_runs[-1], peer_runs[-1], f"{case} {variant} round {r}"))
        if repeats > 1 and "nopeer" not in opts:
            summary.append(spread_summary(f"{case} {variant}", mine_runs, peer_runs))
    (OUT / "summary.json").write_text(json.dumps([s for s in summary if s], indent=1))
    for s in summary:
        if s and "verdict" in s:
            t = s["tps_per_device"]
            print(f"TABLE {s['compare']:<14} ours {t['ours']['median']:>10,.0f} ({t['ours']['min']:,.0f}..{t['ours']['max']:,.0f})"
                  f"  peer {t['peer']['median']:>10,.0f} ({t['peer']['min']:,.0f}..{t['peer']['max']:,.0f})"
                  f"  ratio {s['ratio_tps']:.3f} {s['verdict']}  mem {s['ratio_mem']}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
