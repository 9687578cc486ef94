#!/usr/bin/env python3
"""Importance-weighted weight error of quantized GGUF files against their fp16 source.

For every tensor that llama-imatrix recorded, sum over its elements imatrix_j * (w - w_q)^2, with
imatrix_j = the mean squared activation of input channel j (in_sum2 / counts). Tensors are
grouped by kind (attn_q, ffn_down, ...). Only meaningful for files whose weights are the fp16
file's (no AWQ scales folded in: scaled weights see scaled inputs).

Usage: gguf_weighted_error.py IMATRIX.gguf FP16.gguf QUANT.gguf [QUANT.gguf ...]
Needs gguf-py (pip `gguf`)."""
import sys

import gguf
import numpy as np
from gguf.quants import dequantize


def tensors(path):
    return {t.name: t for t in gguf.GGUFReader(path).tensors}


def main():
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    imat, fp_path, files = sys.argv[1], sys.argv[2], sys.argv[3:]
    sum2, counts = {}, {}
    for name, t in tensors(imat).items():
        if name.endswith(".in_sum2"):
            sum2[name[: -len(".in_sum2")]] = np.array(t.data, dtype=np.float64).reshape(-1)
        elif name.endswith(".counts"):
            counts[name[: -len(".counts")]] = float(np.array(t.data).reshape(-1)[0])
    fp = tensors(fp_path)
    quants = [tensors(f) for f in files]
    by_kind, total = {}, np.zeros(len(files))
    for name, t in fp.items():
        if name not in sum2:
            continue
        imp = sum2[name] / max(counts.get(name, 1.0), 1.0)
        w = dequantize(t.data, t.tensor_type).astype(np.float64).reshape(-1, imp.size)
        errs = np.zeros(len(files))
        for i, q in enumerate(quants):
            if name not in q:
                sys.exit(f"{files[i]}: tensor {name} missing")
            wq = dequantize(q[name].data, q[name].tensor_type).astype(np.float64).reshape(w.shape)
            errs[i] = (((w - wq) ** 2) * imp).sum()
        kind = name.split(".")[-2]
        by_kind[kind] = by_kind.get(kind, np.zeros(len(files))) + errs
        total += errs
    print("kind\t" + "\t".join(files))
    for kind, v in list(by_kind.items()) + [("total", total)]:
        print(kind + "\t" + "\t".join(f"{x:.6g} ({x / v[0]:.3f}x)" for x in v))


if __name__ == "__main__":
    main()
