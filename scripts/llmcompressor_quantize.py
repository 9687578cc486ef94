#!/usr/bin/env python3
"""Write a compressed-tensors checkpoint with llm-compressor itself (vLLM's quantizer), for
`awq ppl` to read (issue 13: a checkpoint we did not write). Data-free W4A16 weight-only
quantization (QuantizationModifier, min-max observers, no calibration), asymmetric or
symmetric, group size G; lm_head left in fp.

llm-compressor 0.14 pins torch <= 2.14 / transformers <= 5.17; this machine has torch 2.15 and
transformers 5.24, so it runs in a venv over the system packages with `--no-deps`
(`python3 -m venv --system-site-packages V && V/bin/pip install --no-deps llmcompressor loguru
&& V/bin/pip install datasets`), as docs/RESULTS.md records.

Usage: llmcompressor_quantize.py FP_DIR OUT [--group-size 64] [--symmetric]
"""
import argparse

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer
from llmcompressor import oneshot
from llmcompressor.modifiers.quantization import QuantizationModifier


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("out")
    ap.add_argument("--group-size", type=int, default=64)
    ap.add_argument("--symmetric", action="store_true")
    a = ap.parse_args()
    model = AutoModelForCausalLM.from_pretrained(a.model, torch_dtype=torch.float32)
    tok = AutoTokenizer.from_pretrained(a.model)
    recipe = QuantizationModifier(
        config_groups={"group_0": {"targets": ["Linear"],
                                   "weights": {"num_bits": 4, "type": "int",
                                               "symmetric": a.symmetric, "strategy": "group",
                                               "group_size": a.group_size}}},
        ignore=["lm_head"])
    oneshot(model=model, recipe=recipe)
    model.save_pretrained(a.out, save_compressed=True)
    tok.save_pretrained(a.out)


if __name__ == "__main__":
    main()
