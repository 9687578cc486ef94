#!/usr/bin/env python3
"""Perplexity of an AutoAWQ GEMM checkpoint loaded by AutoAWQ 0.2.9 itself on a CPU
(AutoAWQForCausalLM.from_quantized, unchanged checkpoint), same windows and protocol as
`awq ppl` (docs/EVAL.md). Runs in the pinned venv that `make test-autoawq` builds
(autoawq 0.2.9, transformers 4.51.3, the system torch).

Three stand-ins, all outside the checkpoint: the `datasets` import stub and Triton off of
scripts/autoawq_cpu.py (shared with autoawq_quantize.py), and the IPEX kernel choice that
from_quantized forces on a CPU (see the comment below).

Usage: autoawq_ppl.py CKPT TEXT [--ctx 2048] [--max-windows N] [--protocol autoawq|llamacpp]
                      [--fp32-dequant]
Prints one JSON line like scripts/hf_ppl.py.

AutoAWQ's WQLinear_GEMM casts its input to fp16 in every forward (awq/modules/linear/gemm.py), so
its loader has no fp32 mode. --fp32-dequant is the same checkpoint through AutoAWQ's own unpacking
(awq.utils.packing_utils.dequantize_gemm: its bit order, zeros and group expansion) with the
scales in fp32, each WQLinear_GEMM replaced by an fp32 nn.Linear of that weight and the model run
in fp32 by Transformers: the reference that computes as our engine does.
"""
import argparse, json, math, sys, time

import autoawq_cpu  # noqa: E402,F401  (the datasets stub and Triton off; before `awq`)
import torch  # noqa: E402
import awq.models.base as awq_base  # noqa: E402
from awq import AutoAWQForCausalLM  # noqa: E402

# On a CPU, from_quantized forces its IPEX kernels (intel_extension_for_pytorch, which has no
# build for this torch): "Please install intel_extension_for_pytorch ... for 'ipex' kernel!".
# Answering its device probe with "cuda" keeps the plain WQLinear_GEMM modules; the weights
# still go to device_map="cpu" and WQLinear_GEMM runs its pure-PyTorch dequantize + matmul.
awq_base.get_best_device = lambda: "cuda:0"
from transformers import AutoTokenizer  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("text")
    ap.add_argument("--ctx", type=int, default=2048)
    ap.add_argument("--protocol", default="autoawq", choices=["autoawq", "llamacpp"])
    ap.add_argument("--max-windows", type=int, default=-1)
    ap.add_argument("--fp32-dequant", action="store_true",
                    help="AutoAWQ's dequantize_gemm in fp32 + Transformers' fp32 forward")
    a = ap.parse_args()
    tok = AutoTokenizer.from_pretrained(a.model)
    model = AutoAWQForCausalLM.from_quantized(a.model, fuse_layers=False, device_map={"": "cpu"},
                                              torch_dtype=torch.float16)
    loader = "autoawq 0.2.9 from_quantized (CPU, fp16, pure-PyTorch GEMM)"
    if a.fp32_dequant:
        n = autoawq_cpu.to_fp32_dequant(model)
        loader = (f"autoawq 0.2.9 from_quantized, {n} WQLinear_GEMM -> fp32 nn.Linear of "
                  "awq.utils.packing_utils.dequantize_gemm (fp32 scales), Transformers fp32 forward")
    model.eval()
    text = open(a.text, encoding="utf-8", newline="").read()
    ids = tok(text)["input_ids"]
    n_win = len(ids) // a.ctx
    if a.max_windows > 0:
        n_win = min(n_win, a.max_windows)
    first = 0 if a.protocol == "autoawq" else a.ctx // 2
    nll_sum, n_scored, t0 = 0.0, 0, time.time()
    with torch.no_grad():
        for w in range(n_win):
            x = torch.tensor([ids[w * a.ctx:(w + 1) * a.ctx]])
            logits = model(x).logits[0].float()
            lp = torch.log_softmax(logits[first:a.ctx - 1].double(), dim=-1)
            nll = -lp.gather(1, x[0, first + 1:a.ctx][:, None])[:, 0]
            nll_sum += float(nll.sum())
            n_scored += int(nll.numel())
            print(f"window {w + 1}/{n_win} running ppl {math.exp(nll_sum / n_scored):.4f}",
                  file=sys.stderr, flush=True)
    print(json.dumps({"ppl": math.exp(nll_sum / n_scored), "mean_nll": nll_sum / n_scored,
                      "tokens_scored": n_scored, "tokens_total": len(ids), "windows": n_win,
                      "ctx": a.ctx, "protocol": a.protocol, "seconds": time.time() - t0,
                      "loader": loader}))


if __name__ == "__main__":
    main()
