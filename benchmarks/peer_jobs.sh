#!/usr/bin/env bash
# The GPU jobs of docs/BENCHMARKS.md "Ahead of the peer on the small models" (issue 30), one per
# call; each ends within 9.5 minutes on one H100 (a deadline cuts the last run short, and what
# finished is still packed):
#   bash benchmarks/peer_jobs.sh 1 [HEAD]  # GPU tests of the head + loss; the head + loss alone
#                                          # (every implementation, 4 shapes); qwen3-0.6b ours vs
#                                          # the peer x2, alternating, one profiled step of ours
#   bash benchmarks/peer_jobs.sh 2 [HEAD]  # gemma3-1b x2 (profiled); olmo2-1b mb8 and llama2-271m
#                                          # mb32 x1
#   bash benchmarks/peer_jobs.sh 3 [HEAD]  # olmo2-1b mb8 and llama2-271m mb32 with ours' head HEAD
# HEAD: ours' head + loss (chunked | liger); job 1 picks the faster at the Qwen3 / Gemma-3 shapes.
# Needs .peer/whl (the peer's wheels) and .peer/ours (pydantic, tomlkit, liger-kernel). Each run's
# log goes to /tmp/peer_jobs; $OUT gets results_N.tgz (every log, JSON line and summary).
set -u
START=$SECONDS
left() { local s=$((570 - (SECONDS - START))); echo $((s > 1 ? s : 1)); }  # seconds to the job's deadline
RES=/tmp/peer_jobs; mkdir -p "$RES"
FINAL=${OUT:-/tmp/peer_jobs_out}; mkdir -p "$FINAL"
export PYTHONUNBUFFERED=1
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/ours .peer/ours/*.whl 2>&1 | tail -1
pack() { tar czf "$FINAL/results_$1.tgz" -C "$RES" . ; }
compare() {  # each call's summary.json kept under its own name
  OUT=$RES timeout "$(left)" python3 benchmarks/compare_peer.py "$@"
  mv "$RES/summary.json" "$RES/summary_$SECONDS.json" 2>/dev/null
}
HEAD=${2:-chunked}
case "${1:-1}" in
  1)
    nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,memory.total --format=csv,noheader
    PYTHONPATH=/tmp/ours python3 -c "import torch, triton, importlib.metadata as m; \
print('torch', torch.__version__, 'triton', triton.__version__, 'liger', m.version('liger-kernel'))"
    PYTHONPATH=/tmp/ours timeout 120 python3 -m pytest -q -o addopts="" -p no:cacheprovider \
      tests/engine/test_fused_loss_gpu.py 2>&1 | tail -4
    PYTHONPATH=/tmp/ours timeout 150 python3 benchmarks/head_loss.py --reps 6 | tee "$RES/head_loss.jsonl"
    HEAD=$(python3 -c "
import json
rows = [json.loads(l) for l in open('$RES/head_loss.jsonl') if l.startswith('{')]
ms = {(r['shape'], r['impl']): r['ms'] for r in rows if 'ms' in r}
liger = sum(ms.get((s, 'liger'), 1e9) for s in ('qwen3', 'gemma3'))
chunked = sum(ms.get((s, 'chunked'), 1e9) for s in ('qwen3', 'gemma3'))
print('liger' if liger < chunked else 'chunked')")
    echo "head + loss for ours: $HEAD"
    compare --repeats 2 "q:profile,$HEAD"
    pack 1
    ;;
  2)
    compare --repeats 2 "g:profile,$HEAD"
    compare b8 a32
    pack 2
    ;;
  3)
    compare "b8:$HEAD" "a32:$HEAD"
    pack 3
    ;;
esac
