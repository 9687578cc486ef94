#!/usr/bin/env python3
"""Generate the I/O test fixtures in tests/fixtures/io/ with the reference Python packages.

    python3 scripts/gen_io_fixtures.py

Needs numpy, torch, safetensors, gguf (gguf-py) and transformers. The C++ tests read these files
and compare what our reader/dequantizer/converter produce with what the Python packages wrote
or computed -- never with what our own code computed.

Outputs (all small, < 1 MB in total):
  st_python.safetensors      tensors of every dtype written by safetensors.torch.save_file
  st_python.expected.json    their dtype, shape and raw bytes (hex), from torch
  quant.gguf                 one [2, 256] tensor per ggml type (F32, F16, BF16, Q8_0, Q4_0,
                             Q4_1, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K), plus an IQ4_NL tensor our
                             dequantizer must refuse
  deq_<TYPE>.f32             gguf.quants.dequantize of each, raw little-endian fp32
  meta.gguf                  every metadata value type, nested arrays, general.alignment = 64
  tiny_llama.gguf            a 2-layer llama (hidden 64, 4 heads, 2 kv heads) with a byte-level
                             BPE vocabulary; q/k rows permuted the way llama.cpp's converter does
  tiny_llama.expected.safetensors  the HF tensors (dequantized, q/k un-permuted) in fp32
  tiny_llama.tokenizer.json  the tokenizer Transformers builds from tiny_llama.gguf
"""
import json
import os
import sys

import numpy as np
import torch
import gguf
from gguf import GGMLQuantizationType as T
from gguf import quants
from safetensors.torch import save_file

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "io")
os.makedirs(OUT, exist_ok=True)
rng = np.random.default_rng(1234)


def path(name):
    return os.path.join(OUT, name)


# ---------------------------------------------------------------------------------------------
# safetensors written by the reference package
def gen_safetensors():
    g = torch.Generator().manual_seed(0)
    tensors = {
        "f32": torch.randn(2, 3, generator=g),
        "f16": torch.randn(4, generator=g).half(),
        "bf16": torch.randn(3, 2, generator=g).bfloat16(),
        "i32": torch.tensor([[1, -2], [2147483647, -2147483648]], dtype=torch.int32),
        "i64": torch.tensor([1, -1, 2**40], dtype=torch.int64),
        "u8": torch.tensor([0, 7, 255], dtype=torch.uint8),
        "i8": torch.tensor([-128, 0, 127], dtype=torch.int8),
        "scalar": torch.tensor(3.5, dtype=torch.float32),
        "empty": torch.zeros(0, 5, dtype=torch.float32),
    }
    save_file(tensors, path("st_python.safetensors"), metadata={"format": "pt", "note": "fixture"})
    names = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16",
             torch.int32: "I32", torch.int64: "I64", torch.uint8: "U8", torch.int8: "I8"}
    exp = {}
    for k, t in tensors.items():
        raw = t.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b""
        exp[k] = {"dtype": names[t.dtype], "shape": list(t.shape), "hex": raw.hex()}
    with open(path("st_python.expected.json"), "w") as f:
        json.dump(exp, f, indent=1, sort_keys=True)


# ---------------------------------------------------------------------------------------------
# Quantized blocks and their reference dequantization
def f16_bytes(x):
    return np.asarray(x, dtype=np.float16).view(np.uint8)


def random_kquant_blocks(qtype, n_blocks):
    """Random but valid K-quant blocks: fp16 scales in a sensible range, random payload."""
    blocks = []
    for _ in range(n_blocks):
        if qtype == T.Q4_K or qtype == T.Q5_K:
            d = f16_bytes([rng.uniform(0.001, 0.02)])
            dmin = f16_bytes([rng.uniform(0.0, 0.01)])
            scales = rng.integers(0, 256, 12, dtype=np.uint8)
            extra = rng.integers(0, 256, 32, dtype=np.uint8) if qtype == T.Q5_K else np.zeros(0, np.uint8)
            qs = rng.integers(0, 256, 128, dtype=np.uint8)
            blocks.append(np.concatenate([d, dmin, scales, extra, qs]))
        elif qtype == T.Q6_K:
            ql = rng.integers(0, 256, 128, dtype=np.uint8)
            qh = rng.integers(0, 256, 64, dtype=np.uint8)
            sc = rng.integers(-128, 128, 16).astype(np.int8).view(np.uint8)
            d = f16_bytes([rng.uniform(0.0005, 0.005)])
            blocks.append(np.concatenate([ql, qh, sc, d]))
        else:
            raise ValueError(qtype)
    out = np.concatenate(blocks)
    assert out.size == n_blocks * quants.GGML_QUANT_SIZES[qtype][1]
    return out


def gen_quant():
    rows, cols = 2, 256
    data = rng.standard_normal((rows, cols)).astype(np.float32)
    w = gguf.GGUFWriter(path("quant.gguf"), "test")
    for qt in [T.F32, T.F16, T.BF16, T.Q8_0, T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1, T.Q4_K, T.Q5_K, T.Q6_K]:
        if qt == T.F32:
            raw = data.copy()
            w.add_tensor(qt.name, raw)
        elif qt == T.F16:
            raw = data.astype(np.float16)
            w.add_tensor(qt.name, raw)
        elif qt in (T.Q4_K, T.Q5_K, T.Q6_K):
            bpb = quants.GGML_QUANT_SIZES[qt][1]
            raw = random_kquant_blocks(qt, rows * cols // 256).reshape(rows, cols // 256 * bpb)
            w.add_tensor(qt.name, raw, raw_dtype=qt)
        else:
            raw = quants.quantize(data, qt)
            w.add_tensor(qt.name, raw, raw_dtype=qt)
        ref = quants.dequantize(raw if raw.dtype == np.uint8 else raw, qt) if qt not in (T.F32, T.F16) \
            else raw.astype(np.float32)
        ref = np.asarray(ref, dtype=np.float32).reshape(rows, cols)
        assert np.all(np.isfinite(ref)), qt.name
        ref.astype("<f4").tofile(path(f"deq_{qt.name}.f32"))
    # A type we do not dequantize: the reader must list it, dequantize() must refuse it.
    iq = rng.integers(0, 256, (1, 18 * 8), dtype=np.uint8)
    w.add_tensor("IQ4_NL", iq, raw_dtype=T.IQ4_NL)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


# ---------------------------------------------------------------------------------------------
# Metadata of every type
def gen_meta():
    w = gguf.GGUFWriter(path("meta.gguf"), "test")
    w.add_custom_alignment(64)
    V = gguf.GGUFValueType
    w.add_uint8("t.u8", 200)
    w.add_int8("t.i8", -100)
    w.add_uint16("t.u16", 60000)
    w.add_int16("t.i16", -30000)
    w.add_uint32("t.u32", 4000000000)
    w.add_int32("t.i32", -2000000000)
    w.add_float32("t.f32", 0.25)
    w.add_bool("t.bool", True)
    w.add_string("t.string", "héllo wörld")
    w.add_uint64("t.u64", 2**63 + 5)
    w.add_int64("t.i64", -(2**62))
    w.add_float64("t.f64", -1.0 / 3.0)
    w.add_array("t.arr_i32", [1, -2, 3])
    w.add_array("t.arr_str", ["a", "", "ccc"])
    w.add_array("t.arr_f32", [0.5, -1.5])
    w.add_array("t.arr_nested", [[1, 2], [3]])
    w.add_tensor("x", np.arange(6, dtype=np.float32).reshape(2, 3))
    w.add_tensor("y", np.arange(5, dtype=np.float16))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


# ---------------------------------------------------------------------------------------------
# A tiny llama with a byte-level BPE tokenizer
def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


def permute(w, n_head, n_head_kv):  # llama.cpp convert_hf_to_gguf.py LlamaModel.permute
    if n_head_kv is not None and n_head != n_head_kv:
        n_head = n_head_kv
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def reverse_permute(w, n_head, n_kv):  # Transformers LlamaTensorProcessor._reverse_permute_weights
    if n_kv is not None and n_head != n_kv:
        n_head = n_kv
    dim = w.shape[0] // n_head // 2
    return w.reshape(n_head, dim, 2, *w.shape[1:]).swapaxes(2, 1).reshape(w.shape)


def gen_tiny_llama():
    hidden, inter, layers, n_head, n_kv = 64, 128, 2, 4, 2
    head_dim = hidden // n_head
    u = bytes_to_unicode()
    tokens = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    types = [3, 3, 3]
    tokens += [u[b] for b in range(256)]
    types += [1] * 256
    merges = ["Ġ t", "h e", "Ġt he", "i n", "Ġ a", "e r", "o n", "Ġ w", "o r", "Ġw or", "l d", "Ġwor ld"]
    for m in merges:
        tokens.append(m.replace(" ", ""))
        types.append(1)
    tokens += ["<think>", "é", "[ctl é]"]  # user-defined; needs respelling; control, not byte-level
    types += [4, 1, 3]
    vocab = len(tokens)

    g = torch.Generator().manual_seed(7)
    hf = {"model.embed_tokens.weight": torch.randn(vocab, hidden, generator=g).numpy()}
    for l in range(layers):
        p = f"model.layers.{l}."
        hf[p + "input_layernorm.weight"] = (1 + 0.1 * torch.randn(hidden, generator=g)).numpy()
        hf[p + "post_attention_layernorm.weight"] = (1 + 0.1 * torch.randn(hidden, generator=g)).numpy()
        hf[p + "self_attn.q_proj.weight"] = torch.randn(n_head * head_dim, hidden, generator=g).numpy()
        hf[p + "self_attn.k_proj.weight"] = torch.randn(n_kv * head_dim, hidden, generator=g).numpy()
        hf[p + "self_attn.v_proj.weight"] = torch.randn(n_kv * head_dim, hidden, generator=g).numpy()
        hf[p + "self_attn.o_proj.weight"] = torch.randn(hidden, n_head * head_dim, generator=g).numpy()
        hf[p + "mlp.gate_proj.weight"] = torch.randn(inter, hidden, generator=g).numpy()
        hf[p + "mlp.up_proj.weight"] = torch.randn(inter, hidden, generator=g).numpy()
        hf[p + "mlp.down_proj.weight"] = torch.randn(hidden, inter, generator=g).numpy()
    hf["model.norm.weight"] = (1 + 0.1 * torch.randn(hidden, generator=g)).numpy()
    hf["lm_head.weight"] = torch.randn(vocab, hidden, generator=g).numpy()  # untied

    names = {"model.embed_tokens.weight": ("token_embd.weight", T.Q8_0),
             "model.norm.weight": ("output_norm.weight", T.F32),
             "lm_head.weight": ("output.weight", T.Q6_K if hidden % 256 == 0 else T.Q5_0)}
    per_layer = {"input_layernorm.weight": ("attn_norm.weight", T.F32),
                 "post_attention_layernorm.weight": ("ffn_norm.weight", T.F32),
                 "self_attn.q_proj.weight": ("attn_q.weight", T.Q4_0),
                 "self_attn.k_proj.weight": ("attn_k.weight", T.Q4_1),
                 "self_attn.v_proj.weight": ("attn_v.weight", T.Q5_1),
                 "self_attn.o_proj.weight": ("attn_output.weight", T.F16),
                 "mlp.gate_proj.weight": ("ffn_gate.weight", T.Q8_0),
                 "mlp.up_proj.weight": ("ffn_up.weight", T.BF16),
                 "mlp.down_proj.weight": ("ffn_down.weight", T.Q4_1)}
    for l in range(layers):
        for k, (gn, qt) in per_layer.items():
            names[f"model.layers.{l}.{k}"] = (f"blk.{l}.{gn}", qt)

    w = gguf.GGUFWriter(path("tiny_llama.gguf"), "llama")
    w.add_block_count(layers)
    w.add_context_length(512)
    w.add_embedding_length(hidden)
    w.add_feed_forward_length(inter)
    w.add_head_count(n_head)
    w.add_head_count_kv(n_kv)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_rope_freq_base(10000.0)
    w.add_vocab_size(vocab)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("smollm")
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges(merges)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_unk_token_id(0)
    w.add_pad_token_id(2)
    w.add_add_bos_token(True)
    w.add_chat_template("{% for m in messages %}<|im_start|>{{ m['content'] }}<|im_end|>{% endfor %}")
    expected = {}
    for hf_name, arr in hf.items():
        gname, qt = names[hf_name]
        x = arr.astype(np.float32)
        if ".q_proj." in hf_name:
            x = permute(x, n_head, n_head)
        elif ".k_proj." in hf_name:
            x = permute(x, n_head, n_kv)
        if qt == T.F32:
            raw = x
            w.add_tensor(gname, raw)
        elif qt == T.F16:
            raw = x.astype(np.float16)
            w.add_tensor(gname, raw)
        else:
            raw = quants.quantize(x, qt)
            w.add_tensor(gname, raw, raw_dtype=qt)
        deq = (raw.astype(np.float32) if qt in (T.F32, T.F16) else quants.dequantize(raw, qt)).reshape(x.shape)
        if ".q_proj." in hf_name:
            deq = reverse_permute(deq, n_head, n_head)
        elif ".k_proj." in hf_name:
            deq = reverse_permute(deq, n_head, n_kv)
        expected[hf_name] = torch.from_numpy(np.ascontiguousarray(deq, dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    save_file(expected, path("tiny_llama.expected.safetensors"))

    # The tokenizer Transformers builds from this GGUF (what our tokenizer.json must match).
    from transformers import AutoTokenizer
    tok = AutoTokenizer.from_pretrained(OUT, gguf_file="tiny_llama.gguf")
    with open(path("tiny_llama.tokenizer.json"), "w") as f:
        f.write(tok.backend_tokenizer.to_str(pretty=True))


def gen_moe_meta():
    """qwen2_moe_meta.gguf: qwen2 metadata with expert_count (a family whose GGUF we do not read
    as mixture-of-experts; llama.cpp's Qwen 2-MoE is its own "qwen2moe"); no tensors. `awq
    convert` must refuse it by key."""
    w = gguf.GGUFWriter(path("qwen2_moe_meta.gguf"), "qwen2")
    w.add_uint32("qwen2.embedding_length", 64)
    w.add_uint32("qwen2.feed_forward_length", 128)
    w.add_uint32("qwen2.block_count", 2)
    w.add_uint32("qwen2.attention.head_count", 4)
    w.add_uint32("qwen2.attention.head_count_kv", 2)
    w.add_uint32("qwen2.expert_count", 8)
    w.add_uint32("qwen2.expert_used_count", 2)
    w.add_float32("qwen2.attention.layer_norm_rms_epsilon", 1e-5)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


if __name__ == "__main__":
    import sys
    if sys.argv[1:] == ["moe_meta"]:  # only the MoE metadata fixture
        gen_moe_meta()
        sys.exit(0)
    gen_safetensors()
    gen_quant()
    gen_meta()
    gen_tiny_llama()
    gen_moe_meta()
    total = sum(os.path.getsize(path(f)) for f in os.listdir(OUT))
    print(f"wrote {len(os.listdir(OUT))} files, {total} bytes, to {os.path.normpath(OUT)}")
    if total > 1 << 20:
        sys.exit("fixtures exceed 1 MB")
