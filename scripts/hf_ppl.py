#!/usr/bin/env python3
"""Reference perplexity with HF Transformers, same protocol as `awq ppl` (docs/EVAL.md).

Usage: hf_ppl.py MODEL_DIR_OR_GGUF TEXT_FILE [--ctx 2048] [--protocol autoawq|llamacpp]
                 [--max-windows N] [--threads N] [--ct-decompress]
MODEL: an HF directory, or a .gguf file (Transformers dequantizes it to fp32).
--ct-decompress: a compressed-tensors checkpoint whose weights the compressed-tensors library
  decompresses itself (PackedQuantizationCompressor.decompress, per module) into the fp32 HF
  model, instead of Transformers' from_pretrained path (which cannot load asymmetric
  pack-quantized checkpoints with Transformers 5.24 + compressed-tensors 0.20.1: the zero point
  is allocated unpacked, "weight_zero_point ... MISMATCH"; docs/FORMAT.md).
Prints one JSON line: ppl, tokens_scored, windows, protocol.
"""
import argparse, json, math, os, sys, time

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer


def load_ct_decompressed(model_path):
    import glob
    from safetensors.torch import load_file
    from transformers import AutoConfig
    from compressed_tensors.compressors.pack_quantized.base import PackedQuantizationCompressor
    from compressed_tensors.quantization import QuantizationConfig
    cfg = AutoConfig.from_pretrained(model_path)
    qd = cfg.quantization_config
    qd = qd if isinstance(qd, dict) else qd.to_dict()
    qc = QuantizationConfig.model_validate(qd)
    scheme = next(iter(qc.config_groups.values()))
    del cfg.quantization_config
    model = AutoModelForCausalLM.from_config(cfg, dtype=torch.float32)
    t = {}
    for f in sorted(glob.glob(os.path.join(model_path, "*.safetensors"))):
        t.update(load_file(f))
    sd = {}
    for k, v in t.items():
        if k.endswith(".weight_packed"):
            p = k[: -len(".weight_packed")]
            part = {n[len(p) + 1:]: x for n, x in t.items() if n.startswith(p + ".weight_")}
            sd[p + ".weight"] = PackedQuantizationCompressor.decompress(part, scheme)["weight"]
        elif not any(k.endswith(s) for s in (".weight_scale", ".weight_zero_point", ".weight_shape")):
            sd[k] = v
    missing, unexpected = model.load_state_dict({k: v.float() for k, v in sd.items()}, strict=False)
    missing = [m for m in missing if not (m == "lm_head.weight" and cfg.tie_word_embeddings)]
    if missing or unexpected:
        raise SystemExit(f"{model_path}: missing {missing[:5]} unexpected {unexpected[:5]}")
    if cfg.tie_word_embeddings:
        model.tie_weights()
    return AutoTokenizer.from_pretrained(model_path), model


def load(model_path):
    if model_path.endswith(".gguf"):
        d, f = os.path.split(os.path.abspath(model_path))
        tok = AutoTokenizer.from_pretrained(d, gguf_file=f)
        model = AutoModelForCausalLM.from_pretrained(d, gguf_file=f, torch_dtype=torch.float32)
    else:
        tok = AutoTokenizer.from_pretrained(model_path)
        model = AutoModelForCausalLM.from_pretrained(model_path, torch_dtype=torch.float32)
    model.eval()
    return tok, model


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("text")
    ap.add_argument("--ctx", type=int, default=2048)
    ap.add_argument("--protocol", default="autoawq", choices=["autoawq", "llamacpp"])
    ap.add_argument("--max-windows", type=int, default=-1)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--ct-decompress", action="store_true")
    a = ap.parse_args()
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    tok, model = load_ct_decompressed(a.model) if a.ct_decompress else load(a.model)
    model.eval()
    # newline="" keeps the bytes as they are (no \r\n -> \n translation), like `awq ppl`
    text = open(a.text, encoding="utf-8", newline="").read()
    ids = tok(text)["input_ids"]
    n_win = len(ids) // a.ctx
    if a.max_windows > 0:
        n_win = min(n_win, a.max_windows)
    first = 0 if a.protocol == "autoawq" else a.ctx // 2
    nll_sum, n_scored = 0.0, 0
    t0 = time.time()
    with torch.no_grad():
        for w in range(n_win):
            x = torch.tensor([ids[w * a.ctx:(w + 1) * a.ctx]])
            logits = model(x).logits[0].float()
            lp = torch.log_softmax(logits[first:a.ctx - 1].double(), dim=-1)
            tgt = x[0, first + 1:a.ctx]
            nll = -lp.gather(1, tgt[:, None])[:, 0]
            nll_sum += float(nll.sum())
            n_scored += int(nll.numel())
            print(f"window {w + 1}/{n_win} running ppl {math.exp(nll_sum / n_scored):.4f} "
                  f"({time.time() - t0:.0f}s)", file=sys.stderr, flush=True)
    print(json.dumps({"ppl": math.exp(nll_sum / n_scored), "mean_nll": nll_sum / n_scored,
                      "tokens_scored": n_scored, "tokens_total": len(ids), "windows": n_win,
                      "ctx": a.ctx, "protocol": a.protocol, "seconds": time.time() - t0}))


if __name__ == "__main__":
    main()
