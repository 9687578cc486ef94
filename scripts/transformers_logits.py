#!/usr/bin/env python3
"""HF Transformers logits of a quantized checkpoint, loaded unchanged, for the engine comparison
in tests/model/transformers_logits_test.cpp (same prompts and fixture layout as
scripts/gen_forward_fixtures.py). Two formats, each through the loader its users run:
  compressed-tensors  Transformers + the compressed-tensors library
  AutoAWQ GEMM        Transformers 5, which loads AWQ through gptqmodel (run this script with a
                      Python that has it: `make` builds build/venv-gptq)

  tokens_<i> I32 [T], argmax_<i> I32 [T], lse_<i> F32 [T], sel_<i> F32 [T, S], sel_ids I32 [S]
  gap_<i>    F32 [T]     top-1 minus top-2 logit (argmax is compared where the gap is clear)
  dsel_<i>   F32 [T, S]  |logits as loaded - logits with the exact fp32 weights (q - z) * s|
  xsel_<i>   F32 [T, S]  the logits with the exact fp32 weights (the test's tight bound)

Both loaders dequantize in the scale dtype. compressed-tensors with a float32 model loads the
fp16 scales into fp32 parameters, so it runs exactly our fp32 w_hat = (q - z) * s (checked here;
the script also accepts fp16(w_hat), what an fp16 model gets). gptqmodel keeps AutoAWQ's fp16
scales, so it runs fp16(w_hat). dsel is the effect of any such rounding, measured by rerunning
the same Transformers model with exact fp32 weights: for compressed-tensors our own unpacking
of the checkpoint, for AutoAWQ gptqmodel's own dequantization with the scales in fp32 (its
unpacking, not ours). The C++ test allows fp32-accumulation error + dsel (triangle inequality).

Usage: transformers_logits.py CKPT_DIR OUT.safetensors
"""
import glob, json, os, sys

import numpy as np
import torch
import transformers
from safetensors.numpy import save_file
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoTokenizer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gen_forward_fixtures import PROMPTS  # noqa: E402


def exact_weights(ckpt, bits, symmetric):
    """(q - z) * s in fp32 for every quantized linear, from the checkpoint's tensors."""
    from compressed_tensors.compressors.pack_quantized.helpers import unpack_from_int32
    t = {}
    for f in sorted(glob.glob(os.path.join(ckpt, "*.safetensors"))):
        t.update(load_file(f))
    out = {}
    for k in t:
        if not k.endswith(".weight_packed"):
            continue
        p = k[: -len(".weight_packed")]
        shape = torch.Size(t[p + ".weight_shape"].tolist())
        q = unpack_from_int32(t[k], bits, shape).float()  # signed codes
        s = t[p + ".weight_scale"].float()
        if symmetric:
            z = torch.zeros_like(s)
        else:
            z = unpack_from_int32(t[p + ".weight_zero_point"], bits,
                                  torch.Size([shape[0], s.shape[1]]), packed_dim=0).float()
        g = shape[1] // s.shape[1]
        out[p] = (q - z.repeat_interleave(g, 1)) * s.repeat_interleave(g, 1)
    return out


def run(model, tok, sel):
    res = []
    with torch.no_grad():
        for p in PROMPTS:
            ids = tok(p)["input_ids"]
            res.append((ids, model(torch.tensor([ids])).logits[0].double()))
    return res


def ct_exact(ckpt, qc, model):
    """compressed-tensors: put (q - z) * s into every quantized linear; None if a loaded weight is
    neither that nor its fp16 rounding."""
    w = qc["config_groups"]["group_0"]["weights"]
    exact = exact_weights(ckpt, w["num_bits"], w["symmetric"])
    mods = dict(model.named_modules())
    kinds = set()
    for p, we in exact.items():
        lw = mods[p].weight.data
        if lw.dtype == torch.float32 and torch.equal(lw, we):
            kinds.add("(q - z) * s exactly (dequantized in fp32: the scales were loaded as fp32)")
        elif lw.dtype == torch.float32 and torch.equal(lw, we.half().float()):
            kinds.add("fp16((q - z) * s)")
        else:
            print(f"{p}: Transformers' weight ({lw.dtype}) is neither (q - z) * s nor its fp16 "
                  f"rounding: max diff {(lw.float() - we).abs().max().item()}")
            return None
    for p, we in exact.items():
        mods[p].weight.data.copy_(we)
    return len(exact), kinds


def awq_exact(model):
    """AutoAWQ through gptqmodel: every AWQ linear's weights dequantized by gptqmodel's own
    dequantize_gemm with the scales in fp32, then used as a plain fp32 matmul."""
    from gptqmodel.quantization.awq.utils.packing_utils import dequantize_gemm
    n, kinds = 0, set()
    for name, mod in model.named_modules():
        if not all(hasattr(mod, a) for a in ("qweight", "qzeros", "scales", "dequantize_weight")):
            continue
        if mod.scales.dtype != torch.float16:
            print(f"{name}: scales loaded as {mod.scales.dtype}, expected AutoAWQ's float16")
            return None
        with torch.no_grad():
            loaded = mod.dequantize_weight().float()
            w = dequantize_gemm(qweight=mod.qweight, qzeros=mod.qzeros, scales=mod.scales.float(),
                                bits=mod.bits, group_size=mod.group_size).float()
        if torch.equal(loaded, w):
            kinds.add("(q - z) * s exactly")
        elif torch.equal(loaded, w.half().float()):
            kinds.add("fp16((q - z) * s) (gptqmodel dequantizes in the fp16 scale dtype)")
        else:
            print(f"{name}: gptqmodel's weight is neither (q - z) * s nor its fp16 rounding: "
                  f"max diff {(loaded - w).abs().max().item()}")
            return None
        bias = mod.bias

        def fwd(x, w=w, bias=bias):
            y = torch.matmul(x, w)
            return y + bias if bias is not None else y
        mod.forward = fwd
        n += 1
        kinds.add(f"kernel {type(mod).__name__}")
    return n, kinds


def main():
    ckpt, out = sys.argv[1], sys.argv[2]
    qc = json.load(open(os.path.join(ckpt, "config.json")))["quantization_config"]
    tok = AutoTokenizer.from_pretrained(ckpt)
    model = AutoModelForCausalLM.from_pretrained(ckpt, dtype=torch.float32,
                                                 attn_implementation="eager")
    model.eval()
    V = model.config.vocab_size
    sel = np.arange(0, V, 97, dtype=np.int32)
    # compressed-tensors keeps the model compressed until the first forward (a decompress hook).
    loaded = run(model, tok, sel)
    method = qc.get("quant_method")
    if method == "compressed-tensors":
        r = ct_exact(ckpt, qc, model)
    elif method == "awq":
        r = awq_exact(model)
    else:
        print(f"{ckpt}: quantization_config.quant_method {method!r}: expected compressed-tensors "
              f"or awq")
        return 1
    if r is None:
        return 1
    n, kinds = r
    if n == 0:
        print(f"{ckpt}: Transformers loaded no quantized linear")
        return 1
    print(f"Transformers {transformers.__version__} loaded {n} quantized linears: weights == "
          f"{' / '.join(sorted(kinds))}")
    write_fixture(out, ckpt, sel, loaded, run(model, tok, sel), "fp16 weight rounding")
    return 0


def write_fixture(out, ckpt, sel, loaded, exact_run, what):
    """The fixture the C++ test reads: the loader's logits as loaded (sel, argmax, gap, lse),
    |as loaded - exact| (dsel, the effect of `what`) and the exact-weights logits (xsel)."""
    tensors = {"sel_ids": sel}
    for i, ((ids, lg), (ids_x, lx)) in enumerate(zip(loaded, exact_run)):
        assert ids == ids_x
        tensors[f"tokens_{i}"] = np.array(ids, dtype=np.int32)
        tensors[f"argmax_{i}"] = lg.argmax(-1).numpy().astype(np.int32)
        top2 = lg.topk(2, -1).values
        tensors[f"gap_{i}"] = (top2[:, 0] - top2[:, 1]).numpy().astype(np.float32)
        tensors[f"lse_{i}"] = torch.logsumexp(lg, -1).numpy().astype(np.float32)
        tensors[f"sel_{i}"] = lg[:, sel].numpy().astype(np.float32)
        tensors[f"dsel_{i}"] = (lg[:, sel] - lx[:, sel]).abs().numpy().astype(np.float32)
        tensors[f"xsel_{i}"] = lx[:, sel].numpy().astype(np.float32)
        print(f"prompt {i}: {len(ids)} tokens; {what} moves logits by up to "
              f"{tensors[f'dsel_{i}'].max():.3g}")
    tmp = out + ".tmp"
    save_file(tensors, tmp, metadata={"model": ckpt, "n_prompts": str(len(PROMPTS))})
    os.replace(tmp, out)

if __name__ == "__main__":
    sys.exit(main())
