#!/usr/bin/env bash
# Batch-1 decode tokens/s under the three OpenMP wait policies, interleaved.
# Usage: bench/decode_policies.sh AWQ_BINARY MODEL [ROUNDS]
set -euo pipefail
AWQ=$1 M=$2 ROUNDS=${3:-2}
declare -A POL=([default]="AWQ_NO_REEXEC=1" [spin10k]="" [passive]="OMP_WAIT_POLICY=passive")
uptime
for r in $(seq "$ROUNDS"); do
  for p in default spin10k passive; do
    echo "$p: $(env ${POL[$p]} "$AWQ" bench "$M" -p 64 -n 64 -b 1 -t 2 2>&1 | grep -E 'tg|pp' | tr '\n' ' ') load $(cut -d' ' -f1 /proc/loadavg)"
  done
done
uptime
