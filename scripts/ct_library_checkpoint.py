#!/usr/bin/env python3
"""Writes a compressed-tensors checkpoint with the compressed-tensors library itself (not our
writer): min-max W4A16 group quantization of an HF fp model, the way llm-compressor's default
observer does it (library `calculate_qparams`, then `PackedQuantizationCompressor.compress`),
and the config the library serializes (`QuantizationConfig.model_dump`). Reading it is the
"foreign checkpoint" check of docs/FORMAT.md: `awq ppl` on it must equal the perplexity of the
PyTorch loader (HF Transformers + compressed-tensors, scripts/hf_ppl.py) on the same windows.

Usage: ct_library_checkpoint.py FP_DIR OUT_DIR [--group-size 64] [--symmetric] [--bits 4]
"""
import argparse, glob, json, os, shutil, sys

import torch
from safetensors.torch import load_file, save_file
from compressed_tensors.compressors.pack_quantized.base import PackedQuantizationCompressor
from compressed_tensors.quantization import (QuantizationArgs, QuantizationConfig,
                                             QuantizationScheme)
from compressed_tensors.quantization.utils.helpers import calculate_qparams

COPIED = ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
          "generation_config.json", "vocab.json", "merges.txt", "chat_template.jinja"]
LINEARS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("fp_dir")
    ap.add_argument("out")
    ap.add_argument("--group-size", type=int, default=64)
    ap.add_argument("--bits", type=int, default=4)
    ap.add_argument("--symmetric", action="store_true")
    a = ap.parse_args()
    args = QuantizationArgs(num_bits=a.bits, type="int", symmetric=a.symmetric,
                            strategy="group", group_size=a.group_size)
    scheme = QuantizationScheme(targets=["Linear"], weights=args, format="pack-quantized")
    src = {}
    for f in sorted(glob.glob(os.path.join(a.fp_dir, "*.safetensors"))):
        src.update(load_file(f))
    out = {}
    n_q = 0
    for name, t in src.items():
        prefix = name[: -len(".weight")]
        if name.endswith(".weight") and prefix.rsplit(".", 1)[-1] in LINEARS:
            w = t.to(torch.float16)  # an fp16 model, as llm-compressor would quantize it
            N, K = w.shape
            g = w.reshape(N, K // a.group_size, a.group_size)
            scale, zp = calculate_qparams(g.amin(-1), g.amax(-1), args)
            sd = {"weight": w, "weight_scale": scale.to(torch.float16)}
            if not a.symmetric:
                sd["weight_zero_point"] = zp
            comp = PackedQuantizationCompressor.compress(sd, scheme)
            for k, v in comp.items():
                out[f"{prefix}.{k}"] = v.contiguous()
            n_q += 1
        else:
            out[name] = t.to(torch.float16).contiguous()
    qcfg = QuantizationConfig(config_groups={"group_0": scheme}, format="pack-quantized",
                              quantization_status="compressed", ignore=["lm_head"])
    cfg = json.load(open(os.path.join(a.fp_dir, "config.json")))
    qd = qcfg.model_dump()
    qd["quant_method"] = "compressed-tensors"
    cfg["quantization_config"] = qd
    cfg["torch_dtype"] = "float16"
    tmp = a.out + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    save_file(out, os.path.join(tmp, "model.safetensors"), metadata={"format": "pt"})
    with open(os.path.join(tmp, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    for c in COPIED:
        if os.path.exists(os.path.join(a.fp_dir, c)):
            shutil.copy(os.path.join(a.fp_dir, c), tmp)
    shutil.rmtree(a.out, ignore_errors=True)
    os.replace(tmp, a.out)
    print(f"wrote {a.out}: {n_q} linears quantized by compressed-tensors "
          f"(w{a.bits} g{a.group_size} {'sym' if a.symmetric else 'asym'})")


if __name__ == "__main__":
    sys.exit(main())
