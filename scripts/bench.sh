#!/usr/bin/env bash
# `make bench`: throughput of our engine on the real model (SmolLM2-135M), fp32 and W4, with the
# memory bandwidth of the machine (llama-bench style: pp512 / tg128 tokens/s, mean +- sd).
# Usage: scripts/bench.sh [W4_CHECKPOINT] [THREADS]   (defaults: models/smollm2-rtn4-g64, all cores)
# The W4 checkpoint is made by `make test`'s RTN target when missing (one second; same kernels as AWQ).
# Numbers go in docs/RESULTS.md with the machine and `uptime` load printed here.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
FP=models/smollm2-fp32
W4=${1:-models/smollm2-rtn4-g64}
T=${2:-0}
[ -x "$BUILD/awq" ] || { echo "bench.sh: $BUILD/awq missing (run make build)" >&2; exit 1; }
[ -f "$FP/config.json" ] || { echo "bench.sh: $FP missing (run make fp-model)" >&2; exit 1; }
if [ ! -f "$W4/config.json" ]; then
  W4=out/bench-rtn4-g64
  [ -f "$W4/config.json" ] || "$BUILD/awq" quantize "$FP" "$W4" --method rtn --group-size 64 --overwrite
fi
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
echo "load before: $(uptime)"
echo "== W4 ($W4) =="
"$BUILD/awq" bench "$W4" -t "$T" --membw
echo "== fp32 ($FP) =="
"$BUILD/awq" bench "$FP" -t "$T"
echo "load after: $(uptime)"
