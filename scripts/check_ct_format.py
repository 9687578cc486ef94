#!/usr/bin/env python3
"""Checks an awq-cpp compressed-tensors checkpoint with the compressed-tensors library itself.

For every quantized linear (a `<prefix>.weight_packed` tensor), the library's own
`PackedQuantizationCompressor.decompress`, driven by the scheme that the library parses from our
config.json (`QuantizationConfig.model_validate`), must give exactly the reference weight rounded
to fp16 once (the library dequantizes in the scale dtype; our fp32 weights are (q - z) * s), bit
for bit. Then the library's `compress` of that reference weight with our scales and zero points
must give our packed words exactly (it packs the same codes the same way).

Usage: check_ct_format.py CKPT_DIR --reference REF.safetensors
       check_ct_format.py --pairs CKPT_1 REF_1 [CKPT_2 REF_2 ...]   (one import of torch)
REF holds `<prefix>.weight` in fp32: the dequantized weights our C++ evaluated.
Prints "RESULT <i> OK" or "RESULT <i> MISMATCH" per pair; exit status 0 when everything
matches, 1 on a mismatch, 2 on a usage or loading error.
"""
import argparse, glob, json, os, sys, types

import torch
from safetensors.torch import load_file
from compressed_tensors.compressors.pack_quantized.base import PackedQuantizationCompressor
from compressed_tensors.quantization import QuantizationConfig


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("ckpt", nargs="?")
    ap.add_argument("--reference")
    ap.add_argument("--pairs", nargs="+")
    a = ap.parse_args()
    pairs = [(a.ckpt, a.reference)] if a.ckpt else list(zip(a.pairs[::2], a.pairs[1::2]))
    if not pairs or any(p is None for pr in pairs for p in pr) or (a.pairs and len(a.pairs) % 2):
        ap.error("give CKPT --reference REF, or --pairs CKPT REF ...")
    worst = 0
    for i, (ckpt, ref) in enumerate(pairs):
        rc = check(ckpt, ref)
        print(f"RESULT {i} {'OK' if rc == 0 else 'MISMATCH' if rc == 1 else 'ERROR'}", flush=True)
        worst = max(worst, rc)
    return worst


def check(ckpt, reference):
    a = types.SimpleNamespace(ckpt=ckpt, reference=reference)
    with open(os.path.join(a.ckpt, "config.json")) as f:
        qc = json.load(f)["quantization_config"]
    if qc.get("quant_method") != "compressed-tensors":
        print(f"{a.ckpt}: quant_method is {qc.get('quant_method')!r}", file=sys.stderr)
        return 2
    cfg = QuantizationConfig.model_validate(qc)  # the library's own reading of our config
    if cfg.format != "pack-quantized" or len(cfg.config_groups) != 1:
        print(f"unexpected format {cfg.format} / groups {list(cfg.config_groups)}", file=sys.stderr)
        return 2
    scheme = next(iter(cfg.config_groups.values()))
    if "lm_head" not in (cfg.ignore or []):
        print("lm_head is not in quantization_config.ignore", file=sys.stderr)
        return 1
    tensors = {}
    for f in sorted(glob.glob(os.path.join(a.ckpt, "*.safetensors"))):
        tensors.update(load_file(f))
    ref = load_file(a.reference)
    prefixes = sorted(k[: -len(".weight_packed")] for k in tensors if k.endswith(".weight_packed"))
    if not prefixes:
        print("no .weight_packed tensors", file=sys.stderr)
        return 2
    bad = 0
    for p in prefixes:
        sd = {k[len(p) + 1:]: v for k, v in tensors.items() if k.startswith(p + ".weight_")}
        out = PackedQuantizationCompressor.decompress(dict(sd), scheme)
        w = out["weight"]
        want = ref[p + ".weight"].to(torch.float16)
        if w.dtype != torch.float16 or w.shape != want.shape:
            print(f"{p}: decompressed {w.dtype} {tuple(w.shape)}, want float16 {tuple(want.shape)}")
            bad += 1
            continue
        diff = (w.view(torch.int16) != want.view(torch.int16)).nonzero()
        if len(diff):
            r, c = diff[0].tolist()
            print(f"{p}: {len(diff)} weights differ, first [{r}, {c}]: library "
                  f"{w[r, c].item()!r} vs ours {want[r, c].item()!r}")
            bad += 1
            continue
        # The library's compressor, given our scales/zero points, packs the same words.
        comp_in = {"weight": ref[p + ".weight"], "weight_scale": sd["weight_scale"]}
        if "weight_zero_point" in sd:
            comp_in["weight_zero_point"] = out["weight_zero_point"]
        comp = PackedQuantizationCompressor.compress(comp_in, scheme)
        for k in ("weight_packed", "weight_zero_point"):
            if k in sd and not torch.equal(comp[k], sd[k]):
                print(f"{p}.{k}: the library packs different words than ours")
                bad += 1
        if not torch.equal(comp["weight_shape"].to(torch.int64), sd["weight_shape"].to(torch.int64)):
            print(f"{p}.weight_shape differs")
            bad += 1
    w = scheme.weights
    print(f"compressed-tensors {len(prefixes)} layers (w{w.num_bits} {w.strategy} "
          f"g{w.group_size} {'sym' if w.symmetric else 'asym'}): "
          f"{'OK, bit-exact' if not bad else f'{bad} MISMATCHES'}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
