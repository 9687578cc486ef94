#!/usr/bin/env bash
# Peak RSS of `awq quantize` on two synthetic models of equal width and 4x different depth.
# Usage: scripts/bench_quant_memory.sh [BUILD_DIR]   (writes under out/memtest/)
set -euo pipefail
cd "$(dirname "$0")/.."
AWQ=${1:-build}/awq
D=out/memtest
rm -rf "$D" && mkdir -p "$D"
for L in 4 16; do
  python3 scripts/make_synthetic_model.py "$D/src-$L" --layers "$L"
  /usr/bin/time -f "%M" -o "$D/rss-$L.txt" "$AWQ" quantize "$D/src-$L" "$D/q-$L" \
    --group-size 128 --n-samples 12 --search-blocks 2 >/dev/null 2>"$D/log-$L.txt"
  echo "layers=$L model_bytes=$(stat -c %s "$D/src-$L/model.safetensors") peak_rss_kb=$(cat "$D/rss-$L.txt")"
done
python3 - "$D" <<'PY'
import sys
d = sys.argv[1]
a, b = (int(open(f"{d}/rss-{l}.txt").read().split()[-1]) for l in (4, 16))
print(f"peak RSS 16 layers / 4 layers = {b / a:.3f} (bar: < 1.15)")
PY
