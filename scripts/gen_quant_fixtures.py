#!/usr/bin/env python3
"""Independent numpy reference for awq-cpp's group quantization (src/quant/group_quant.h).

Writes tests/fixtures/quant/*.bin, which tests/quant/group_quant_test.cpp compares bit-exactly.

The arithmetic follows AutoAWQ's pseudo_quantize_tensor (awq/quantize/quantizer.py) with this
project's precision contract: every step in float32, the scale rounded to float16 before the
codes are computed from it, round half to even (np.round), w_hat = (q - z) * s in float32.

    asymmetric: s = f16(max(max - min, 1e-5) / (2^b - 1)); z = clip(-round(min / s), 0, 2^b - 1)
                q = clip(round(w / s) + z, 0, 2^b - 1);     w_hat = (q - z) * s
    symmetric:  s = f16(max(max|w|, 1e-5) / (2^(b-1) - 1)); q = clip(round(w / s), -2^(b-1), 2^(b-1) - 1)
                w_hat = q * s; stored code q + 2^(b-1), stored zero 2^(b-1)

File format (little endian):
    8 bytes magic b"AWQQFX01"
    int32 N, K, w_bit, group_size (as configured; -1 = per channel), zero_point (0/1)
    float32 W[N][K]        input
    float32 W_hat[N][K]    fake-quantized
    uint8   q[N][K]        stored codes
    uint8   zeros[N][K/G]  stored zero points
    uint16  scales[N][K/G] fp16 bits

Usage: python3 scripts/gen_quant_fixtures.py [out_dir]   (default tests/fixtures/quant)
Deterministic (fixed seeds): rerunning must reproduce the committed files byte for byte.
"""
import os
import struct
import sys

import numpy as np

F32 = np.float32


def quantize_ref(W, w_bit, group_size, zero_point):
    W = np.asarray(W, dtype=F32)
    N, K = W.shape
    G = K if group_size <= 0 else group_size
    assert K % G == 0
    w = W.reshape(N, K // G, G)
    if zero_point:
        qmax = F32(2 ** w_bit - 1)
        mx = w.max(axis=2, keepdims=True)
        mn = w.min(axis=2, keepdims=True)
        rng = np.maximum(mx - mn, F32(1e-5))
        s = (rng / qmax).astype(np.float16).astype(F32)
        z = np.clip(-np.round(mn / s), F32(0), qmax)
        q = np.clip(np.round(w / s) + z, F32(0), qmax)
        w_hat = (q - z) * s
        codes, zeros = q, z
    else:
        qmax = F32(2 ** (w_bit - 1) - 1)
        qmin = F32(-(2 ** (w_bit - 1)))
        amax = np.maximum(np.abs(w).max(axis=2, keepdims=True), F32(1e-5))
        s = (amax / qmax).astype(np.float16).astype(F32)
        q = np.clip(np.round(w / s), qmin, qmax)
        w_hat = q * s
        off = F32(2 ** (w_bit - 1))
        codes, zeros = q + off, np.full_like(s, off)
    for a in (w_hat, s, codes):
        assert a.dtype == F32, a.dtype
    return (
        w_hat.reshape(N, K),
        codes.reshape(N, K).astype(np.uint8),
        zeros.reshape(N, K // G).astype(np.uint8),
        s.reshape(N, K // G).astype(np.float16).view(np.uint16),
    )


def write_fixture(path, W, w_bit, group_size, zero_point):
    W = np.ascontiguousarray(W, dtype=F32)
    N, K = W.shape
    w_hat, q, z, s = quantize_ref(W, w_bit, group_size, zero_point)
    with open(path, "wb") as f:
        f.write(b"AWQQFX01")
        f.write(struct.pack("<5i", N, K, w_bit, group_size, 1 if zero_point else 0))
        for a in (W, w_hat.astype(F32), q, z, s):
            f.write(np.ascontiguousarray(a).astype(a.dtype.newbyteorder("<")).tobytes())


def weights(rng, N, K, kind):
    if kind == "normal":
        return (rng.standard_normal((N, K)) * 0.05).astype(F32)
    if kind == "fp16grid":  # what an fp16 checkpoint loads to
        return (rng.standard_normal((N, K)) * 0.02).astype(np.float16).astype(F32)
    if kind == "outliers":  # heavy tails, per-row magnitudes from 1e-4 to 10
        W = rng.standard_t(2, (N, K)).astype(F32) * F32(0.03)
        W *= (10.0 ** rng.uniform(-4, 1, (N, 1))).astype(F32)
        return W.astype(F32)
    if kind == "edge":  # all-equal, all-positive, all-negative, tiny, exact .5 ties
        W = (rng.standard_normal((N, K)) * 0.1).astype(F32)
        W[0, :] = F32(0.3)
        W[1, :] = F32(-0.7)
        W[2, :] = np.abs(W[2, :]) + F32(1.0)
        W[3, :] = -np.abs(W[3, :]) - F32(1.0)
        W[4, :] = W[4, :] * F32(1e-6)
        # integers + .5 with range exactly 2^b - 1 scale 1.0 -> round-half-even ties
        W[5, :] = (rng.integers(0, 15, K) + 0.5).astype(F32)
        W[5, ::16] = F32(0.0)
        W[5, 1::16] = F32(15.0)
        return W
    raise ValueError(kind)


# name, N, K, w_bit, group_size, zero_point, weight kind, seed
CASES = [
    ("asym4_g32_normal", 8, 128, 4, 32, True, "normal", 1),
    ("asym4_g128_fp16grid", 16, 256, 4, 128, True, "fp16grid", 2),
    ("asym4_g64_outliers", 12, 192, 4, 64, True, "outliers", 3),
    ("asym4_g16_edge", 8, 64, 4, 16, True, "edge", 4),
    ("asym4_perchannel", 8, 96, 4, -1, True, "outliers", 5),
    ("sym4_g64_normal", 8, 128, 4, 64, False, "normal", 6),
    ("sym4_g16_edge", 8, 64, 4, 16, False, "edge", 7),
    ("asym3_g32_normal", 8, 128, 3, 32, True, "normal", 8),
    ("sym3_g32_outliers", 8, 64, 3, 32, False, "outliers", 9),
    ("asym8_g32_normal", 8, 128, 8, 32, True, "normal", 10),
    ("asym8_g16_edge", 8, 64, 8, 16, True, "edge", 11),
    ("sym8_perchannel", 8, 96, 8, -1, False, "fp16grid", 12),
    ("asym2_g32_normal", 4, 64, 2, 32, True, "normal", 13),
]


def main():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(root, "tests", "fixtures", "quant")
    os.makedirs(out, exist_ok=True)
    for name, N, K, b, g, zp, kind, seed in CASES:
        W = weights(np.random.default_rng(seed), N, K, kind)
        write_fixture(os.path.join(out, name + ".bin"), W, b, g, zp)
    print(f"wrote {len(CASES)} fixtures to {out}")


if __name__ == "__main__":
    main()
