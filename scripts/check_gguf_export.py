#!/usr/bin/env python3
"""A GGUF file written by `awq quantize --format gguf`, read by the loaders users run:

1. gguf-py (llama.cpp's own Python reader): every tensor parses and dequantizes (gguf.quants)
   to exactly the values `awq convert` reads from the same file (bitwise).
2. HF Transformers' GGUF loader (`from_pretrained(dir, gguf_file=...)`, fp32): its tokenizer
   gives the token ids that Transformers' tokenizer of the source directory gives, and its
   logits on the fixture prompts match `awq logits` on our conversion of the file within
   REL_TOL of the logit range (both fp32 forwards of the same dequantized weights).

Usage: check_gguf_export.py AWQ_BIN MODEL.gguf SRC_HF_DIR [--rel-tol 1e-4]
"""
import argparse, glob, os, subprocess, sys, tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gen_forward_fixtures import PROMPTS  # noqa: E402


LAYER = {"attn_norm": "input_layernorm", "ffn_norm": "post_attention_layernorm",
         "attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj", "attn_v": "self_attn.v_proj",
         "attn_output": "self_attn.o_proj", "attn_q_norm": "self_attn.q_norm",
         "attn_k_norm": "self_attn.k_norm", "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj",
         "ffn_down": "mlp.down_proj"}
TOP = {"token_embd": "model.embed_tokens", "output_norm": "model.norm", "output": "lm_head"}


def hf_name(n):
    """llama.cpp's tensor name -> HF (llama / qwen2 / qwen3 layouts)."""
    parts = n.split(".")
    if parts[0] == "blk":
        return f"model.layers.{parts[1]}.{LAYER.get(parts[2], parts[2])}.{parts[3]}"
    return f"{TOP.get(parts[0], parts[0])}.{parts[1]}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("awq")
    ap.add_argument("gguf")
    ap.add_argument("src")
    ap.add_argument("--rel-tol", type=float, default=1e-4)
    a = ap.parse_args()

    import gguf
    from safetensors.numpy import load_file

    with tempfile.TemporaryDirectory() as td:
        conv = os.path.join(td, "hf")
        subprocess.run([a.awq, "convert", a.gguf, conv], check=True, stderr=subprocess.DEVNULL)
        ours = {}
        for f in glob.glob(os.path.join(conv, "*.safetensors")):
            ours.update(load_file(f))
        r = gguf.GGUFReader(a.gguf)
        types = {}
        n_checked = 0
        for t in r.tensors:
            v = gguf.quants.dequantize(t.data, t.tensor_type).astype(np.float32)
            types[t.tensor_type.name] = types.get(t.tensor_type.name, 0) + 1
            flat = v.reshape(-1)
            hf = hf_name(t.name)
            if hf not in ours:
                sys.exit(f"gguf-py: tensor {t.name}: no {hf} in awq convert's output")
            # the same values (q/k rows are in llama.cpp's RoPE order in the file: compare as
            # multisets; every other tensor element by element)
            x = ours[hf].reshape(-1)
            same = (np.array_equal(np.sort(x), np.sort(flat)) if hf.endswith(("q_proj.weight", "k_proj.weight"))
                    else np.array_equal(x, flat))
            if not same:
                sys.exit(f"gguf-py: tensor {t.name} ({t.tensor_type.name}) dequantizes to other "
                         f"values than awq convert's {hf}")
            n_checked += 1
        print(f"gguf-py: {n_checked} tensors parsed and dequantized, values equal to awq convert's "
              f"({', '.join(f'{k} x{v}' for k, v in sorted(types.items()))})")

        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
        torch.set_num_threads(os.cpu_count() or 1)
        d, f = os.path.split(os.path.abspath(a.gguf))
        tok = AutoTokenizer.from_pretrained(d, gguf_file=f)
        ref_tok = AutoTokenizer.from_pretrained(a.src)
        model = AutoModelForCausalLM.from_pretrained(d, gguf_file=f, dtype=torch.float32)
        model.eval()
        worst = 0.0
        for i, p in enumerate(PROMPTS):
            ids = tok(p)["input_ids"]
            if ids != ref_tok(p)["input_ids"]:
                sys.exit(f"Transformers: prompt {i}: the GGUF's tokenizer gives {ids}, the source "
                         f"directory's {ref_tok(p)['input_ids']}")
            with torch.no_grad():
                ref = model(torch.tensor([ids])).logits[0].double().numpy()
            out = os.path.join(td, f"l{i}.npy")
            subprocess.run([a.awq, "logits", conv, "--ids", ",".join(map(str, ids)), "-o", out],
                           check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            got = np.load(out).astype(np.float64)
            if got.shape != ref.shape:
                sys.exit(f"prompt {i}: awq logits shape {got.shape}, Transformers {ref.shape}")
            rel = float(np.abs(got - ref).max() / (ref.max() - ref.min()))
            worst = max(worst, rel)
            if rel > a.rel_tol:
                sys.exit(f"prompt {i}: max |awq - Transformers| / logit range = {rel:.3g} > "
                         f"{a.rel_tol:g}")
        print(f"Transformers from_pretrained(gguf_file=): tokenizer equal on {len(PROMPTS)} "
              f"prompts; logits vs awq: max diff / range {worst:.2e} (tol {a.rel_tol:g})")


if __name__ == "__main__":
    main()
