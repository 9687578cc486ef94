#!/usr/bin/env python3
"""AutoAWQ 0.2.9's logits for our AutoAWQ GEMM checkpoint, loaded unchanged by its own
`from_quantized` on a CPU (the stand-ins of scripts/autoawq_ppl.py), in the fixture layout of
scripts/transformers_logits.py, for tests/model/transformers_logits_test.cpp. Runs in the pinned
venv (`make build/venv-autoawq/.ok`: autoawq 0.2.9, Transformers 4.51.3, the system torch).

"As loaded" is AutoAWQ's fp16 model (WQLinear_GEMM casts its input to fp16 in every forward);
the exact run is the same checkpoint through AutoAWQ's own dequantize_gemm with fp32 scales in an
fp32 model (autoawq_cpu.to_fp32_dequant), so dsel is the effect of AutoAWQ's fp16 arithmetic and
xsel is AutoAWQ's unpacking computed as our engine computes.

Usage: autoawq_logits.py CKPT_DIR OUT.safetensors
"""
import os, sys

import autoawq_cpu  # noqa: F401  (the datasets stub and Triton off; before `awq`)
import numpy as np
import torch
import awq.models.base as awq_base
from awq import AutoAWQForCausalLM
from transformers import AutoTokenizer

from transformers_logits import run, write_fixture

# As in autoawq_ppl.py: from_quantized forces IPEX kernels on a CPU; answering its device probe
# with "cuda" keeps the plain WQLinear_GEMM modules (weights stay on device_map="cpu").
awq_base.get_best_device = lambda: "cuda:0"


def main():
    if len(sys.argv) != 3:
        print(__doc__)
        return 2
    ckpt, out = sys.argv[1], sys.argv[2]
    tok = AutoTokenizer.from_pretrained(ckpt)
    model = AutoAWQForCausalLM.from_quantized(ckpt, fuse_layers=False, device_map={"": "cpu"},
                                              torch_dtype=torch.float16)
    model.eval()
    V = model.model.config.vocab_size
    sel = np.arange(0, V, 97, dtype=np.int32)
    loaded = run(model, tok, sel)
    n = autoawq_cpu.to_fp32_dequant(model)
    if n == 0:
        print(f"{ckpt}: AutoAWQ loaded no WQLinear_GEMM")
        return 1
    print(f"AutoAWQ 0.2.9 loaded {n} WQLinear_GEMM linears (fp16 forward)")
    write_fixture(out, ckpt, sel, loaded, run(model, tok, sel), "AutoAWQ's fp16 arithmetic")
    return 0


if __name__ == "__main__":
    sys.exit(main())
