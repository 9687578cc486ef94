#!/usr/bin/env python3
"""Write a synthetic Llama HF directory (random fp32 weights, the tiny_llama3 test tokenizer).

Usage: make_synthetic_model.py OUT_DIR --layers N [--hidden 512] [--intermediate 1536] [--seed 0]
       [--dtype f32|f16] [--vocab V] [--untied]
Used by scripts/bench_quant_memory.sh (peak RSS must not grow with depth).
"""
import argparse, json, os, shutil

import numpy as np
from safetensors.numpy import save_file

ap = argparse.ArgumentParser()
ap.add_argument("out")
ap.add_argument("--layers", type=int, required=True)
ap.add_argument("--hidden", type=int, default=512)
ap.add_argument("--intermediate", type=int, default=1536)
ap.add_argument("--heads", type=int, default=8)
ap.add_argument("--kv-heads", type=int, default=4)
ap.add_argument("--seed", type=int, default=0)
ap.add_argument("--dtype", choices=["f32", "f16"], default="f32")
ap.add_argument("--vocab", type=int, default=704, help="rows of the embedding (>= the test tokenizer's 704)")
ap.add_argument("--untied", action="store_true", help="a separate lm_head")
a = ap.parse_args()
here = os.path.dirname(os.path.abspath(__file__))
tok = os.path.join(here, "..", "tests", "fixtures", "tokenizer", "tiny_llama3", "tokenizer.json")
V, H, I, hd = max(704, a.vocab), a.hidden, a.intermediate, a.hidden // a.heads
os.makedirs(a.out, exist_ok=True)
json.dump({"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": H,
           "intermediate_size": I, "num_hidden_layers": a.layers, "num_attention_heads": a.heads,
           "num_key_value_heads": a.kv_heads, "vocab_size": V, "rms_norm_eps": 1e-5,
           "rope_theta": 10000.0, "tie_word_embeddings": not a.untied, "max_position_embeddings": 2048},
          open(os.path.join(a.out, "config.json"), "w"), indent=1)
shutil.copy(tok, os.path.join(a.out, "tokenizer.json"))
rng = np.random.default_rng(a.seed)
t = {"model.embed_tokens.weight": rng.normal(0, 0.1, (V, H)).astype(np.float32),
     "model.norm.weight": np.ones(H, np.float32)}
for l in range(a.layers):
    p = f"model.layers.{l}."
    t[p + "input_layernorm.weight"] = np.ones(H, np.float32)
    t[p + "post_attention_layernorm.weight"] = np.ones(H, np.float32)
    for n, (o, i) in {"self_attn.q_proj": (H, H), "self_attn.k_proj": (a.kv_heads * hd, H),
                      "self_attn.v_proj": (a.kv_heads * hd, H), "self_attn.o_proj": (H, H),
                      "mlp.gate_proj": (I, H), "mlp.up_proj": (I, H),
                      "mlp.down_proj": (H, I)}.items():
        t[p + n + ".weight"] = rng.normal(0, 0.05, (o, i)).astype(np.float32)
if a.untied:
    t["lm_head.weight"] = rng.normal(0, 0.1, (V, H)).astype(np.float32)
if a.dtype == "f16":
    t = {k: v.astype(np.float16) for k, v in t.items()}
save_file(t, os.path.join(a.out, "model.safetensors"), metadata={"format": "pt"})
