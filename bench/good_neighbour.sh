#!/usr/bin/env bash
# CPU seconds (user+sys) of `awq quantize` and `awq ppl` under three OpenMP wait policies,
# interleaved (policy A, B, C, A, B, C, ...) so that the machine's load is shared fairly, with
# one extra CPU-bound process (`yes > /dev/null`) running unless NEIGHBOUR=0.
# Usage: bench/good_neighbour.sh AWQ_BINARY QUANT_MODEL_DIR CALIB PPL_MODEL PPL_TEXT [ROUNDS]
set -euo pipefail
AWQ=$1 QM=$2 CALIB=$3 PM=$4 TXT=$5 ROUNDS=${6:-2}
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"; [ -n "${NB:-}" ] && kill $NB 2>/dev/null || true' EXIT
if [ "${NEIGHBOUR:-1}" = 1 ]; then yes > /dev/null & NB=$!; fi
declare -A POL=([default]="AWQ_NO_REEXEC=1" [spin10k]="" [passive]="OMP_WAIT_POLICY=passive")
run() {  # policy, label, command...
  local p=$1 l=$2; shift 2
  /usr/bin/time -f "%U %S %e" -o "$OUT/t" env ${POL[$p]} "$@" > /dev/null 2>&1
  read -r u s e < "$OUT/t"
  printf "%-8s %-9s cpu %6.1f s  wall %6.1f s  (user %s sys %s)  load %s\n" "$l" "$p" \
    "$(echo "$u + $s" | bc)" "$e" "$u" "$s" "$(cut -d' ' -f1 /proc/loadavg)"
}
uptime
for r in $(seq "$ROUNDS"); do
  for p in default spin10k passive; do
    rm -rf "$OUT/q"
    run $p quantize "$AWQ" quantize "$QM" "$OUT/q" --calib "$CALIB" --n-samples 24 --seqlen 128 \
      --group-size 32 --no-resume-state
    run $p ppl "$AWQ" ppl "$PM" "$TXT" --ctx 512 --max-windows 4
  done
done
uptime
