#!/usr/bin/env bash
# `awq quantize --format gguf` proven by llama.cpp itself (issue 13): llama.cpp's
# llama-perplexity loads our GGUF files, and their perplexity is compared with llama.cpp's own
# quantization (llama-quantize, with and without an importance matrix from llama-imatrix on our
# calibration text) of the same fp model to the same type.
#
# Models (all from FP = models/smollm2-fp32 unless given):
#   fp16           awq quantize --method rtn --format gguf --gguf-type f16 (nothing quantized)
#   llama-T        llama-quantize fp16 -> T
#   llama-T-imat   llama-quantize --imatrix (llama-imatrix on data/calib/default.jsonl's text,
#                  the 81 x 512 tokens our AWQ calibration uses) fp16 -> T
#   awq-T          awq quantize --format gguf --gguf-type T (AWQ search, our importance-weighted
#                  rounding, llama-quantize's per-tensor types), T in TYPES (q4_0 q4_k_m)
#   rtn-T          the same without AWQ (our rounding, no importance)
#   imp-T          our rounding weighted by the activation statistics, no AWQ scaling (the
#                  ablation --n-grid 1 --no-duo-scaling --no-clip)
#   awqf16-K       the AWQ-scaled and clipped f16 model (search: 4-bit, groups of 32, zero
#                  point) -> llama-quantize K: AutoAWQ's GGUF recipe (KTYPES, default none),
#                  beside llama-K and llama-K-imat
# Protocol: llama-perplexity -c 2048 on wiki.test.raw (llama.cpp's: second half of each window
# scored), CHUNKS windows (0 = the whole file); KL vs fp16 on the first KL_CHUNKS windows.
# Usage: scripts/check_gguf_llamacpp.sh [FP_DIR]   env: CHUNKS (0), KL_CHUNKS (8), THREADS (2),
#        TYPES ("q4_0 q4_k_m"), KTYPES (""), W (out/gguf-check)     Prints a markdown table; resumable.
set -euo pipefail
cd "$(dirname "$0")/.."
FP=${1:-models/smollm2-fp32}
CHUNKS=${CHUNKS:-0}
KL_CHUNKS=${KL_CHUNKS:-8}
T=${THREADS:-2}
TYPES=${TYPES:-q4_0 q4_k_m}
KTYPES=${KTYPES-}
W=${W:-out/gguf-check}
WIKI=${WIKI:-../shared/data/wikitext-2-raw/wiki.test.raw}
AWQ=${BUILD:-build}/awq
mkdir -p "$W"
LLCPP_BUILD_ONLY=1 bash scripts/bench_llamacpp.sh x "$T" >/dev/null
BIN=out/llcpp/llama_cpp_python-0.3.36/vendor/llama.cpp/build/bin
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}

step() { echo "== $*" >&2; }
[ -f "$W/fp16.gguf" ] || { step fp16; "$AWQ" quantize "$FP" "$W/fp16.gguf" --method rtn \
  --format gguf --gguf-type f16 --overwrite >"$W/fp16.log" 2>&1; }
[ -f "$W/calib.txt" ] || python3 - "$W/calib.txt" <<'PY'
import json, sys
texts = [json.loads(l)["text"] for l in open("data/calib/default.jsonl", encoding="utf-8")]
open(sys.argv[1], "w", encoding="utf-8").write("\n\n".join(texts))
PY
[ -f "$W/imatrix.gguf" ] || { step imatrix; "$BIN/llama-imatrix" -m "$W/fp16.gguf" -f "$W/calib.txt" \
  -c 512 --chunks 81 -t "$T" -o "$W/imatrix.gguf" >"$W/imatrix.log" 2>&1; }

models="fp16"
for ty in $TYPES; do
  TY=$(echo "$ty" | tr a-z A-Z)
  [ -f "$W/llama-$ty.gguf" ] || { step "llama-$ty"; "$BIN/llama-quantize" "$W/fp16.gguf" \
    "$W/llama-$ty.gguf" "$TY" "$T" >"$W/llama-$ty.log" 2>&1; }
  [ -f "$W/llama-$ty-imat.gguf" ] || { step "llama-$ty-imat"; "$BIN/llama-quantize" \
    --imatrix "$W/imatrix.gguf" "$W/fp16.gguf" "$W/llama-$ty-imat.gguf" "$TY" "$T" \
    >"$W/llama-$ty-imat.log" 2>&1; }
  [ -f "$W/rtn-$ty.gguf" ] || { step "rtn-$ty"; "$AWQ" quantize "$FP" "$W/rtn-$ty.gguf" \
    --method rtn --format gguf --gguf-type "$ty" --overwrite >"$W/rtn-$ty.log" 2>&1; }
  [ -f "$W/awq-$ty.gguf" ] || { step "awq-$ty"; "$AWQ" quantize "$FP" "$W/awq-$ty.gguf" \
    --format gguf --gguf-type "$ty" --overwrite >"$W/awq-$ty.log" 2>&1; }
  [ -f "$W/imp-$ty.gguf" ] || { step "imp-$ty"; "$AWQ" quantize "$FP" "$W/imp-$ty.gguf" \
    --format gguf --gguf-type "$ty" --n-grid 1 --no-duo-scaling --no-clip --overwrite \
    >"$W/imp-$ty.log" 2>&1; }
  # Our per-tensor types are llama-quantize's: AWQ's activation statistics play the imatrix's
  # part in its type rules (Q4_0/Q5_0 ffn_down), so awq-T is compared with llama-T-imat.
  python3 scripts/compare_gguf_types.py "$W/awq-$ty.gguf" "$W/llama-$ty-imat.gguf" >&2
  models="$models llama-$ty llama-$ty-imat rtn-$ty imp-$ty awq-$ty"
done
# K-quant mixes: llama-quantize only; AWQ enters through the AWQ-scaled f16 model.
for ty in $KTYPES; do
  TY=$(echo "$ty" | tr a-z A-Z)
  [ -f "$W/awqf16.gguf" ] || { step awqf16; "$AWQ" quantize "$FP" "$W/awqf16.gguf" --format gguf \
    --gguf-type f16 --w-bit 4 --group-size 32 --overwrite >"$W/awqf16.log" 2>&1; }
  for src in fp16 awqf16; do
    dst=$([ $src = fp16 ] && echo "llama-$ty" || echo "awqf16-$ty")
    [ -f "$W/$dst.gguf" ] || { step "$dst"; "$BIN/llama-quantize" "$W/$src.gguf" "$W/$dst.gguf" \
      "$TY" "$T" >"$W/$dst.log" 2>&1; }
  done
  [ -f "$W/llama-$ty-imat.gguf" ] || { step "llama-$ty-imat"; "$BIN/llama-quantize" \
    --imatrix "$W/imatrix.gguf" "$W/fp16.gguf" "$W/llama-$ty-imat.gguf" "$TY" "$T" \
    >"$W/llama-$ty-imat.log" 2>&1; }
  models="$models llama-$ty llama-$ty-imat awqf16-$ty"
done
for m in $models; do
  [ -f "$W/$m.ppl.log" ] || { step "perplexity $m"; "$BIN/llama-perplexity" -m "$W/$m.gguf" \
    -f "$WIKI" -c 2048 --chunks "$([ "$CHUNKS" = 0 ] && echo -1 || echo "$CHUNKS")" -t "$T" \
    >"$W/$m.ppl.log" 2>&1; }
done
[ -f "$W/kl-base.dat" ] || { step "kl base"; "$BIN/llama-perplexity" -m "$W/fp16.gguf" -f "$WIKI" \
  -c 2048 --chunks "$KL_CHUNKS" -t "$T" --kl-divergence-base "$W/kl-base.dat" >"$W/kl-base.log" 2>&1; }
for m in $models; do
  [ "$m" = fp16 ] && continue
  [ -f "$W/$m.kl.log" ] || { step "kl $m"; "$BIN/llama-perplexity" -m "$W/$m.gguf" -f "$WIKI" \
    -c 2048 --chunks "$KL_CHUNKS" -t "$T" --kl-divergence-base "$W/kl-base.dat" --kl-divergence \
    >"$W/$m.kl.log" 2>&1; }
done
python3 - "$W" "$FP" "$CHUNKS" "$KL_CHUNKS" $models <<'PY'
import json, os, re, sys, glob
w, fp, chunks, kl_chunks, models = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5:]
n_params = 0
for f in glob.glob(os.path.join(fp, "*.safetensors")):
    with open(f, "rb") as fh:
        n = int.from_bytes(fh.read(8), "little")
        hdr = json.loads(fh.read(n))
    for k, v in hdr.items():
        if k != "__metadata__":
            p = 1
            for d in v["shape"]:
                p *= d
            n_params += p
def grab(path, pat):
    if not os.path.exists(path):
        return None
    m = re.findall(pat, open(path, errors="replace").read())
    return m[-1] if m else None
print(f"| model | file MB | bits/weight | PPL (llama-perplexity, ctx 2048, "
      f"{'all' if chunks == '0' else chunks} windows) | mean KL vs fp16 ({kl_chunks} windows) |")
print("|---|---|---|---|---|")
rows = []
for m in models:
    size = os.path.getsize(os.path.join(w, m + ".gguf"))
    ppl = grab(os.path.join(w, m + ".ppl.log"), r"Final estimate: PPL = ([0-9.]+) \+/- ([0-9.]+)")
    kl = grab(os.path.join(w, m + ".kl.log"), r"Mean\s+KLD:\s+([0-9.]+)")
    print(f"| {m} | {size / 1e6:.1f} | {size * 8 / n_params:.3f} | "
          f"{ppl[0] + ' +/- ' + ppl[1] if ppl else '?'} | {kl or ('0' if m == 'fp16' else '?')} |")
    rows.append({"model": m, "bytes": size, "ppl": float(ppl[0]) if ppl else None,
                 "kl": float(kl) if kl else None})
json.dump(rows, open(os.path.join(w, "results.json"), "w"), indent=1)
PY
