#!/usr/bin/env python3
"""Per-tensor ggml types of two GGUF files (gguf-py's reader): exit 1 and list the tensors whose
type differs, or that only one file has. Used to check that `awq quantize --format gguf
--gguf-type T` picks llama-quantize's type for every tensor (scripts/check_gguf_llamacpp.sh).

Usage: compare_gguf_types.py OURS.gguf LLAMA_QUANTIZE.gguf
"""
import collections
import sys

from gguf import GGUFReader


def types(path):
    return {t.name: t.tensor_type.name for t in GGUFReader(path).tensors}


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    a, b = types(sys.argv[1]), types(sys.argv[2])
    diff = [(n, a.get(n), b.get(n)) for n in sorted(set(a) | set(b)) if a.get(n) != b.get(n)]
    counts = collections.Counter(a.values())
    mix = ", ".join(f"{k} x{v}" for k, v in sorted(counts.items()))
    if diff:
        for n, x, y in diff[:20]:
            print(f"  {n}: {x} vs {y}")
        print(f"{sys.argv[1]}: {len(diff)} of {len(a)} tensor types differ from {sys.argv[2]}")
        sys.exit(1)
    print(f"{sys.argv[1]}: all {len(a)} tensor types equal to {sys.argv[2]}'s ({mix})")


if __name__ == "__main__":
    main()
