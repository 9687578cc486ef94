#!/usr/bin/env python3
"""An AutoAWQ-written checkpoint, made by AutoAWQ 0.2.9 itself on a CPU (issue 13: "read what
AutoAWQ writes"). Runs in the pinned venv of `make test-autoawq` (autoawq 0.2.9, transformers
4.51.3, the system torch): AutoAWQForCausalLM.from_pretrained(FP) -> .quantize(...) ->
.save_quantized(OUT), AutoAWQ's own search and packing, unchanged.

Stand-ins outside AutoAWQ's algorithm: the `datasets` import stub and Triton off of
scripts/autoawq_cpu.py (we pass the calibration texts ourselves; no GPU), and Tensor.cpu()
copying on a CPU as it does on a GPU (see below). Calibration: our embedded corpus (data/calib/default.jsonl), never the evaluation text.

Usage: autoawq_quantize.py FP_DIR OUT_DIR [--calib data/calib/default.jsonl] [--w-bit 4]
       [--group-size 64] [--samples 64] [--seq-len 512] [--dtype float16|float32]
"""
import argparse, json, os, time

import autoawq_cpu  # noqa: E402,F401  (the datasets stub and Triton off; before `awq`)
import torch  # noqa: E402
# AutoAWQ's scale search snapshots a block's weights with {k: v.cpu() ...} (quantizer.py,
# _compute_best_scale), scales them in place for each grid ratio and restores the snapshot. On
# CUDA, .cpu() copies; on a CPU it returns the same tensor, so every "restore" writes back W * s
# and the 20 ratios compound: without this, the checkpoint has PPL ~5e5 (docs/RESULTS.md, layer
# 0's q_proj 65 % away from W * s). As on the GPU AutoAWQ was written for, .cpu() of a CPU tensor
# returns a copy here; nothing else in AutoAWQ's algorithm is changed.
_tensor_cpu = torch.Tensor.cpu
torch.Tensor.cpu = lambda self, *a, **k: (self.clone() if self.device.type == "cpu"
                                          else _tensor_cpu(self, *a, **k))
from awq import AutoAWQForCausalLM  # noqa: E402
from transformers import AutoTokenizer  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("fp")
    ap.add_argument("out")
    ap.add_argument("--calib", default=os.path.join(os.path.dirname(__file__), "..", "data",
                                                     "calib", "default.jsonl"))
    ap.add_argument("--w-bit", type=int, default=4)
    ap.add_argument("--group-size", type=int, default=64)
    ap.add_argument("--samples", type=int, default=64)
    ap.add_argument("--seq-len", type=int, default=512)
    ap.add_argument("--dtype", default="float16", choices=["float16", "float32"],
                    help="dtype the fp model is loaded in (AutoAWQ's examples: float16)")
    a = ap.parse_args()
    texts = [json.loads(l)["text"] for l in open(a.calib, encoding="utf-8") if l.strip()]
    t0 = time.time()
    model = AutoAWQForCausalLM.from_pretrained(a.fp, torch_dtype=getattr(torch, a.dtype))
    tok = AutoTokenizer.from_pretrained(a.fp)
    cfg = {"zero_point": True, "q_group_size": a.group_size, "w_bit": a.w_bit, "version": "GEMM"}
    model.quantize(tok, quant_config=cfg, calib_data=texts, max_calib_samples=a.samples,
                   max_calib_seq_len=a.seq_len)
    tmp = a.out.rstrip("/") + ".tmp"
    model.save_quantized(tmp)
    tok.save_pretrained(tmp)
    os.replace(tmp, a.out)
    print(json.dumps({"out": a.out, "seconds": round(time.time() - t0, 1), "quant_config": cfg,
                      "samples": a.samples, "seq_len": a.seq_len, "dtype": a.dtype}))


if __name__ == "__main__":
    main()
