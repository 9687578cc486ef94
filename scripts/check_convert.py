#!/usr/bin/env python3
"""Check `awq convert` against HF Transformers' own GGUF loader.

    python3 scripts/check_convert.py MODEL.gguf CONVERTED_DIR

Loads MODEL.gguf with transformers (AutoModelForCausalLM / AutoTokenizer with gguf_file=...),
then compares every tensor of CONVERTED_DIR/model.safetensors bit-exactly (fp32) with the
Transformers state dict, and our tokenizer.json (loaded by `tokenizers`) with the Transformers
GGUF tokenizer on a set of strings. Exit code 0 only if everything matches.
"""
import json
import os
import sys

import torch
from safetensors.torch import load_file
from tokenizers import Tokenizer
from transformers import AutoModelForCausalLM, AutoTokenizer

STRINGS = [
    "Hello, world!",
    "The quick brown fox jumps over the lazy dog. 1234567 + 89 = ?",
    "  leading spaces and trailing   ",
    "naïve café — Ünïcödé, 日本語のテキスト, emoji 🤗🚀",
    "<|im_start|>user\nWhat is AWQ?<|im_end|>\n<|im_start|>assistant\n",
    "def f(x):\n\treturn x**2  # comment\n\n\n",
    "I'm sure they'll've done it; we'd DONE it's",
    "",
]


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    gguf_path, out_dir = sys.argv[1], sys.argv[2]
    gdir, gname = os.path.dirname(os.path.abspath(gguf_path)), os.path.basename(gguf_path)
    failures = 0

    model = AutoModelForCausalLM.from_pretrained(gdir, gguf_file=gname, dtype=torch.float32)
    ref = model.state_dict()
    ours = load_file(os.path.join(out_dir, "model.safetensors"))
    cfg = json.load(open(os.path.join(out_dir, "config.json")))
    tied = cfg.get("tie_word_embeddings", False)
    print(f"transformers state dict: {len(ref)} tensors; ours: {len(ours)}; tied={tied}")
    for name, t in ref.items():
        if name not in ours:
            if tied and name == "lm_head.weight":
                continue
            print(f"MISSING in ours: {name}")
            failures += 1
            continue
        o = ours[name]
        if o.dtype != torch.float32 or t.dtype != torch.float32:
            print(f"DTYPE {name}: ours {o.dtype}, transformers {t.dtype}")
            failures += 1
        elif o.shape != t.shape:
            print(f"SHAPE {name}: ours {tuple(o.shape)}, transformers {tuple(t.shape)}")
            failures += 1
        elif not torch.equal(o.view(torch.int32), t.contiguous().view(torch.int32)):
            diff = (o - t).abs().max().item()
            print(f"VALUES {name}: not bit-exact, max |diff| = {diff}")
            failures += 1
    extra = sorted(set(ours) - set(ref))
    for name in extra:
        print(f"EXTRA in ours: {name}")
        failures += 1
    print(f"tensors: {len(ref) - (1 if tied and 'lm_head.weight' in ref else 0)} compared, "
          f"{failures} mismatches")
    for k in ["hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
              "num_key_value_heads", "vocab_size", "max_position_embeddings", "tie_word_embeddings",
              "bos_token_id", "eos_token_id"]:
        rv = getattr(model.config, k, None)
        if cfg.get(k) != rv:
            print(f"CONFIG {k}: ours {cfg.get(k)!r}, transformers {rv!r}")
            failures += 1
    for k in ["rms_norm_eps", "rope_theta"]:
        rv = getattr(model.config, k, None)
        if rv is None and k == "rope_theta":
            rp = getattr(model.config, "rope_parameters", None) or {}
            # Transformers 5: per layer type for Gemma 3 (full / sliding attention)
            rv = (rp.get("full_attention") or rp).get("rope_theta")
        if rv is None or abs(cfg.get(k) - rv) > 1e-6 * abs(rv):
            print(f"CONFIG {k}: ours {cfg.get(k)!r}, transformers {rv!r}")
            failures += 1
    rp = getattr(model.config, "rope_parameters", None) or {}
    if "sliding_attention" in rp:
        rv = rp["sliding_attention"].get("rope_theta")
        if cfg.get("rope_local_base_freq") != rv:
            print(f"CONFIG rope_local_base_freq: ours {cfg.get('rope_local_base_freq')!r}, "
                  f"transformers sliding_attention rope_theta {rv!r}")
            failures += 1
    for k in ["head_dim", "sliding_window", "layer_types", "query_pre_attn_scalar",
              "final_logit_softcapping", "attn_logit_softcapping"]:
        if k in cfg and cfg[k] != getattr(model.config, k, None):
            print(f"CONFIG {k}: ours {cfg[k]!r}, transformers {getattr(model.config, k, None)!r}")
            failures += 1

    hf_tok = AutoTokenizer.from_pretrained(gdir, gguf_file=gname)
    our_tok = Tokenizer.from_file(os.path.join(out_dir, "tokenizer.json"))
    tok_fail = 0
    for s in STRINGS:
        a = hf_tok(s)["input_ids"]
        b = our_tok.encode(s).ids
        if a != b:
            print(f"TOKENS differ for {s!r}:\n  transformers {a}\n  ours         {b}")
            tok_fail += 1
        elif our_tok.decode(b, skip_special_tokens=False) != hf_tok.decode(a):
            print(f"DECODE differs for {s!r}")
            tok_fail += 1
    print(f"tokenizer: {len(STRINGS)} strings compared, {tok_fail} mismatches; "
          f"vocab {our_tok.get_vocab_size()} vs {len(hf_tok)}")
    failures += tok_fail
    print("RESULT:", "PASS" if failures == 0 else f"FAIL ({failures})")
    return 0 if failures == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
