#!/usr/bin/env bash
# llama.cpp on the same machine and model, for docs/RESULTS.md (issue: W4 inference).
# llama.cpp comes from PyPI's llama-cpp-python sdist (it vendors llama.cpp's source): we build
# its llama-bench, llama-quantize, llama-server, llama-perplexity and llama-imatrix tools with
# CMake (llama-server for scripts/bench_serve.py, the last two for scripts/check_gguf_llamacpp.sh),
# requantize the PyPI GGUF to Q4_0 and Q4_K_M, and run llama-bench
# (pp512, tg128) next to `awq bench` on our AWQ checkpoint.
# Usage: scripts/bench_llamacpp.sh AWQ_CHECKPOINT [THREADS]     (writes under out/llcpp/)
set -euo pipefail
cd "$(dirname "$0")/.."
CKPT=${1:?usage: bench_llamacpp.sh AWQ_CHECKPOINT [THREADS]}
T=${2:-2}
VER=0.3.36
W=${LLCPP_WORK:-out/llcpp}
mkdir -p "$W"
SRC="$W/llama_cpp_python-$VER/vendor/llama.cpp"
if [ ! -d "$SRC" ]; then
  python3 -m pip download --no-deps --no-binary :all: "llama-cpp-python==$VER" -d "$W"
  tar xzf "$W/llama_cpp_python-$VER.tar.gz" -C "$W"
fi
TOOLS="llama-bench llama-quantize llama-server llama-perplexity llama-imatrix"
missing_tool=""
for t in $TOOLS; do [ -x "$SRC/build/bin/$t" ] || missing_tool=1; done
if [ -n "$missing_tool" ]; then
  # GGML_NATIVE=ON dies with "Illegal instruction" on the AVX-512 + AMX VM of 2026-12-01 (AMX
  # state not usable there), so AVX-512 hosts get the AVX-512/VNNI/BF16 set without AMX.
  ISA="-DGGML_NATIVE=ON"
  grep -q avx512_vnni /proc/cpuinfo && ISA="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON \
    -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_AVX512=ON -DGGML_AVX512_VNNI=ON -DGGML_AVX512_BF16=ON \
    -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF"
  # shellcheck disable=SC2086
  cmake -S "$SRC" -B "$SRC/build" -DCMAKE_BUILD_TYPE=Release $ISA -DGGML_OPENMP=ON \
    -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=ON -DLLAMA_CURL=OFF \
    -DLLAMA_OPENSSL=OFF >/dev/null
  # shellcheck disable=SC2086
  cmake --build "$SRC/build" -j"$(nproc)" --target $TOOLS
fi
# The source for llama-quantize: the PyPI GGUF itself (Q4_1), requantized. Its dequantized
# weights are exactly our fp32 "FP" model (models/smollm2-fp32 is converted from it), so this
# equals converting FP to GGUF and quantizing, without needing torch for convert_hf_to_gguf.py.
SRC_GGUF=models/SmolLM2-135M-Instruct.Q4_1.gguf
for q in Q4_0 Q4_K_M; do
  [ -f "$W/smollm2-$q.gguf" ] || "$SRC/build/bin/llama-quantize" --allow-requantize "$SRC_GGUF" \
    "$W/smollm2-$q.gguf" "$q" >"$W/quantize-$q.log" 2>&1
done
[ -n "${LLCPP_BUILD_ONLY:-}" ] && exit 0
# Both engines run under the same OpenMP settings (the caller's environment; unset = libgomp's
# default spin-then-sleep policy, the right one on an idle machine).
for q in Q4_0 Q4_K_M; do
  "$SRC/build/bin/llama-bench" -m "$W/smollm2-$q.gguf" -p 512 -n 128 -t "$T" -r 3 -o json \
    >"$W/llama-bench-$q.json"
  python3 - "$W/llama-bench-$q.json" "$q" "$(stat -c %s "$W/smollm2-$q.gguf")" <<'PY'
import json, sys
for r in json.load(open(sys.argv[1])):
    test = f"pp{r['n_prompt']}" if r["n_prompt"] else f"tg{r['n_gen']}"
    print(f"llama.cpp {sys.argv[2]:7s} file {int(sys.argv[3]) / 1e6:6.1f} MB  {test:6s} "
          f"threads {r['n_threads']}  {r['avg_ts']:8.1f} tok/s (+/- {r['stddev_ts']:.1f})")
PY
done
echo "awq-cpp (same OpenMP environment as llama.cpp above):"
"${BUILD:-build}/awq" bench "$CKPT" -p 512 -n 128 -b 1 -t "$T" -r 3
