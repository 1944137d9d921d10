#!/usr/bin/env bash
# The engine-speed GPU jobs of docs/BENCHMARKS.md ("Engine speed"), one per call:
#   bash benchmarks/engine_speed_jobs.sh tune     # step-tuning candidates, float8, live monitor + trace
#   bash benchmarks/engine_speed_jobs.sh peer     # ours vs ai2-olmo-core, 4 cases, + float8 vs bf16
#   bash benchmarks/engine_speed_jobs.sh moe      # OLMoE shape (4 layers): grouped vs loop, ours vs the peer's
#   bash benchmarks/engine_speed_jobs.sh round3   # issues 25-27 in one call: telemetry, CP overhead, MoE (+ peer)
# Needs .peer/whl (the peer's wheels) and .peer/ours (pydantic, tomlkit, torchao for a GPU image
# without them); results: one JSON line per run in $OUT (default /tmp/olmo_bench).
set -u
OUT=${OUT:-/tmp/olmo_bench}; export OUT; mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/ours .peer/ours/*.whl 2>&1 | tail -1
export PYTHONPATH=/tmp/ours PYTHONUNBUFFERED=1
T="python3 benchmarks/throughput.py"
B="--preset olmo2-1b --seq-len 4096 --micro-batch 4 --global-batch-tokens 131072 --set train_module.z_loss_multiplier=null"
F8="--preset olmo2-1b --seq-len 4096 --micro-batch 8 --global-batch-tokens 32768 --steps 50 --set train_module.z_loss_multiplier=null"
one() {  # name command...
  local name=$1; shift
  echo "=== $name: $*"
  local t0=$SECONDS
  "$@" > "$OUT/$name.log" 2>&1; local rc=$?
  echo "rc=$rc wall=$((SECONDS - t0))s"
  grep '^{' "$OUT/$name.log" | tail -1 | tee -a "$OUT/results.jsonl" | cut -c1-900
  [ $rc -ne 0 ] && tail -15 "$OUT/$name.log"
}
case "${1:-tune}" in
  tune)
    nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv,noheader
    python3 -c "import torch, torchao; print('torch', torch.__version__, 'torchao', torchao.__version__)"
    one b_base $T $B --steps 12 --skip-steps 4
    one b_foreach $T $B --steps 12 --skip-steps 4 --set train_module.optim.fused=false
    one b_coord $T $B --steps 12 --skip-steps 4 --inductor coordinate_descent_tuning=True
    one f8_bf16 $T $F8
    one f8_rowwise $T $F8 --set train_module.float8=rowwise
    one f8_tensorwise $T $F8 --steps 20 --set train_module.float8=tensorwise
    one live_b python3 benchmarks/live_speed.py --preset olmo2-1b --seq-len 4096 --micro-batch 4 \
      --global-batch-tokens 131072 --steps 25 --window 5 20 --profile
    ;;
  peer)
    python3 benchmarks/compare_peer.py a:steps=20 a32:steps=20 b:steps=15 b8:steps=15
    ;;
  moe)
    nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
    echo "=== ours: python3 benchmarks/moe_gpu.py --layers 4 --seq 4096 --micro 4 --steps 12"
    python3 benchmarks/moe_gpu.py --layers 4 --seq 4096 --micro 4 --steps 12 2>&1 | tee "$OUT/moe_ours.log" \
      | grep '^{' | tee -a "$OUT/results.jsonl"
    python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/peer .peer/whl/*.whl 2>&1 | tail -1
    one moe_peer env PYTHONPATH=/tmp/peer:/tmp/ours python3 benchmarks/peer_olmo_core.py --model olmoe_1B_7B \
      --n-layers 4 --seq-len 4096 --micro-batch 4 --global-batch-tokens 16384 --steps 12 --skip-steps 4
    ;;
  round3)  # one device call, each part under its own deadline (the session's device time is short)
    nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
    one telemetry timeout 90 python3 benchmarks/telemetry_check.py --steps 300
    one cp_overhead timeout 170 python3 benchmarks/cp_overhead.py --preset llama2-271m --seq-len 8192 \
      --micro-batch 1 --global-batch-tokens 65536 --steps 15 --skip-steps 5 --repeats 1
    echo "=== moe_ours: python3 benchmarks/moe_gpu.py --layers 4 --seq 4096 --micro 4 --steps 12 --budget-s 120"
    timeout 200 python3 benchmarks/moe_gpu.py --layers 4 --seq 4096 --micro 4 --steps 12 --budget-s 120 2>&1 \
      | tee "$OUT/moe_ours.log" | grep '^{' | tee -a "$OUT/results.jsonl"
    python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/peer .peer/whl/*.whl 2>&1 | tail -1
    one moe_peer env PYTHONPATH=/tmp/peer:/tmp/ours timeout 110 python3 benchmarks/peer_olmo_core.py \
      --model olmoe_1B_7B --n-layers 4 --seq-len 4096 --micro-batch 4 --global-batch-tokens 16384 --steps 12 --skip-steps 4
    ;;
esac
