#!/usr/bin/env python3
"""Independent check of an AutoAWQ "GEMM" checkpoint written by awq-cpp.

Reads the checkpoint with `safetensors` + `numpy` only and unpacks every quantized layer the
way AutoAWQ does (awq/utils/packing_utils.py: unpack_awq + reverse_awq_order + dequantize_gemm):
shift each int32 right by 0, 4, ..., 28, keep 4 bits, undo the [0, 2, 4, 6, 1, 3, 5, 7] order
(AWQ_REVERSE_ORDER = [0, 4, 1, 5, 2, 6, 3, 7]), W^T = (q - z) * scales per group.

Checks:
  * config.json: quantization_config {quant_method awq, bits 4, group_size, zero_point true,
    version gemm, modules_to_not_convert}, torch_dtype float16;
  * model.safetensors or model-0000i-of-0000n.safetensors + model.safetensors.index.json
    (index lists every tensor exactly once, in the shard that holds it);
  * per quantized layer: qweight int32 [K, N/8], qzeros int32 [K/G, N/8], scales float16
    [K/G, N], optional bias float16 [N], and no <prefix>.weight;
  * every other tensor is float16.
With --reference REF (a .safetensors file or a directory of them) holding float32
<prefix>.weight [N, K] (the dequantized weights awq-cpp evaluated) it also checks, bit for bit:
  * (q - z) * s computed in float32 == the reference;
  * AutoAWQ's own fp16 arithmetic ((int8 q - int8 z) * fp16 scales -> fp16) == reference
    rounded to fp16 once;
and every other reference tensor equals the checkpoint's fp16 tensor after rounding to fp16.

Exit status 0 when everything holds; 1 with one line per problem otherwise.
Usage: python3 scripts/check_awq_format.py CHECKPOINT_DIR [--reference REF]
"""
import argparse
import glob
import json
import os
import sys

import numpy as np
from safetensors import safe_open

AWQ_REVERSE_ORDER = [0, 4, 1, 5, 2, 6, 3, 7]


def load_dir(path):
    """name -> numpy array for a checkpoint dir or a single .safetensors file; also shard map."""
    if os.path.isfile(path):
        files = [path]
    else:
        files = sorted(glob.glob(os.path.join(path, "*.safetensors")))
    tensors, where = {}, {}
    for f in files:
        with safe_open(f, framework="np") as sf:
            for name in sf.keys():
                if name in tensors:
                    raise SystemExit(f"{name} appears in two files ({where[name]}, {f})")
                tensors[name] = sf.get_tensor(name)
                where[name] = os.path.basename(f)
    return tensors, where, files


def unpack_awq(packed):
    """AutoAWQ unpack_awq + reverse_awq_order + & 0xF for 4 bits: int32 [R, C] -> int8 [R, 8C]."""
    shifts = np.arange(0, 32, 4, dtype=np.int32)
    vals = np.right_shift(packed[:, :, None], shifts[None, None, :]).astype(np.int8)
    vals = vals.reshape(packed.shape[0], -1)
    order = np.arange(vals.shape[1]).reshape(-1, 8)[:, AWQ_REVERSE_ORDER].reshape(-1)
    return np.bitwise_and(vals[:, order], np.int8(0xF))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("checkpoint")
    ap.add_argument("--reference")
    args = ap.parse_args()
    problems = []

    cfg_path = os.path.join(args.checkpoint, "config.json")
    with open(cfg_path) as f:
        cfg = json.load(f)
    qc = cfg.get("quantization_config")
    if not isinstance(qc, dict):
        raise SystemExit(f"{cfg_path}: no quantization_config object")
    expect = {"quant_method": "awq", "bits": 4, "zero_point": True, "version": "gemm"}
    for k, v in expect.items():
        if qc.get(k) != v:
            problems.append(f"config.json quantization_config.{k} = {qc.get(k)!r}, expected {v!r}")
    if "modules_to_not_convert" not in qc:
        problems.append("config.json quantization_config.modules_to_not_convert missing")
    if cfg.get("torch_dtype") != "float16":
        problems.append(f"config.json torch_dtype = {cfg.get('torch_dtype')!r}, expected 'float16'")
    group_size = qc.get("group_size")

    tensors, where, files = load_dir(args.checkpoint)
    names = [os.path.basename(f) for f in files]
    index_path = os.path.join(args.checkpoint, "model.safetensors.index.json")
    if os.path.exists(index_path):
        n = len(files)
        want = [f"model-{i:05d}-of-{n:05d}.safetensors" for i in range(1, n + 1)]
        if names != want:
            problems.append(f"shard names {names}, expected {want}")
        with open(index_path) as f:
            wm = json.load(f)["weight_map"]
        if wm != where:
            missing = set(where) - set(wm)
            extra = set(wm) - set(where)
            wrong = [k for k in set(wm) & set(where) if wm[k] != where[k]]
            problems.append(f"index.json weight_map disagrees: missing {sorted(missing)[:5]}, "
                            f"extra {sorted(extra)[:5]}, wrong shard {sorted(wrong)[:5]}")
    elif names != ["model.safetensors"]:
        problems.append(f"single-file checkpoint should be model.safetensors, found {names}")

    prefixes = sorted(n[: -len(".qweight")] for n in tensors if n.endswith(".qweight"))
    if not prefixes:
        problems.append("no quantized layer (.qweight) found")
    dequant32, dequant16, covered = {}, {}, set()
    for p in prefixes:
        qw, qz, sc = (tensors.get(p + s) for s in (".qweight", ".qzeros", ".scales"))
        covered.update(p + s for s in (".qweight", ".qzeros", ".scales", ".bias"))
        if qz is None or sc is None:
            problems.append(f"{p}: .qzeros or .scales missing")
            continue
        if p + ".weight" in tensors:
            problems.append(f"{p}: quantized layer also has a .weight")
        if qw.dtype != np.int32 or qz.dtype != np.int32 or sc.dtype != np.float16:
            problems.append(f"{p}: dtypes {qw.dtype}, {qz.dtype}, {sc.dtype}; expected int32, int32, float16")
            continue
        K, N = qw.shape[0], qw.shape[1] * 8
        G = K if group_size == -1 else group_size
        if K % G or sc.shape != (K // G, N) or qz.shape != (K // G, N // 8):
            problems.append(f"{p}: qweight {qw.shape}, qzeros {qz.shape}, scales {sc.shape} "
                            f"do not fit K={K}, N={N}, group_size={G}")
            continue
        if p + ".bias" in tensors:
            b = tensors[p + ".bias"]
            if b.dtype != np.float16 or b.shape != (N,):
                problems.append(f"{p}.bias: {b.dtype} {b.shape}, expected float16 ({N},)")
        iw = unpack_awq(qw)  # [K, N] int8
        iz = unpack_awq(qz)  # [K/G, N]
        izr = np.repeat(iz, G, axis=0)
        scr = np.repeat(sc, G, axis=0)
        # fp32 dequantization (exact: |q - z| <= 15, fp16 scale)
        dequant32[p] = ((iw.astype(np.int32) - izr.astype(np.int32)).astype(np.float32)
                        * scr.astype(np.float32)).T
        # AutoAWQ's torch path: int8 (q - z) times fp16 scales gives fp16
        d16 = (iw - izr) * scr
        if d16.dtype != np.float16:
            problems.append(f"{p}: numpy promoted int8 * float16 to {d16.dtype}")
        dequant16[p] = d16.T
    for name, t in tensors.items():
        if name not in covered and t.dtype != np.float16:
            problems.append(f"{name}: dtype {t.dtype}, expected float16")

    n_checked = 0
    if args.reference:
        ref, _, _ = load_dir(args.reference)
        for name, r in ref.items():
            p = name[: -len(".weight")] if name.endswith(".weight") else None
            if p in dequant32:
                if r.dtype != np.float32 or r.shape != dequant32[p].shape:
                    problems.append(f"reference {name}: {r.dtype} {r.shape}, expected float32 "
                                    f"{dequant32[p].shape}")
                    continue
                bad = np.count_nonzero(dequant32[p] != r)
                if bad:
                    i = np.argwhere(dequant32[p] != r)[0]
                    problems.append(f"{p}: {bad} fp32 dequantized weights differ from the "
                                    f"reference, first at {tuple(i)}: {dequant32[p][tuple(i)]!r} "
                                    f"vs {r[tuple(i)]!r}")
                bad16 = np.count_nonzero(dequant16[p] != r.astype(np.float16))
                if bad16:
                    problems.append(f"{p}: {bad16} fp16 (AutoAWQ torch path) weights differ "
                                    "from the reference rounded to fp16")
                n_checked += 1
            elif name in tensors:
                t = tensors[name]
                if t.shape != r.shape or np.count_nonzero(t != r.astype(np.float16)):
                    problems.append(f"{name}: checkpoint tensor differs from reference")
                n_checked += 1
            else:
                problems.append(f"reference tensor {name} has no counterpart in the checkpoint")
        missing = [p for p in prefixes if p + ".weight" not in ref]
        if missing:
            problems.append(f"reference lacks {missing[:5]}")

    for line in problems:
        print("FAIL:", line)
    print(f"{args.checkpoint}: {len(prefixes)} quantized layers, {len(tensors)} tensors in "
          f"{len(files)} file(s), {n_checked} compared with the reference: "
          f"{'OK' if not problems else str(len(problems)) + ' problem(s)'}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
