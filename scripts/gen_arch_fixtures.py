#!/usr/bin/env python3
"""Tiny random checkpoints of the families without a real model here, and their reference logits.

Each family's config is the real model's config (the fields that define the block recipe) shrunk
in width and depth; Transformers builds the model (fp32, eager attention) and its weights are
drawn at a scale that gives non-trivial activations (linears N(0, 1/in), norms around their
identity, embeddings N(0, 1)), rounded to fp16 so the checkpoint is small and both sides run on
the same fp32 values. Writes, per family, tests/fixtures/model/tiny_<family>/:
  config.json          as Transformers 5 saves it (rope_parameters spelling)
  model.safetensors    F16 weights (HF names; no lm_head when tied)
  logits.safetensors   tokens_<i> I32 [T], logits_<i> F32 [T, V] (fp32 eager forward)
The tokenizer is tests/fixtures/tokenizer/tiny_llama3 (vocab 704); tests copy it in when a
command needs one.
Usage: gen_arch_fixtures.py [OUT_ROOT [FAMILY ...]]   (default tests/fixtures/model, all families)
"""
import json, os, sys

import numpy as np
import torch
from safetensors.torch import save_file
import transformers as tf

V = 704  # tiny_llama3 tokenizer


def families():
    # Qwen3-0.6B: head_dim 128 with hidden 1024 (q width != hidden), GQA 16/8, q/k norms, tied.
    yield "qwen3", tf.Qwen3Config(
        vocab_size=V, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, head_dim=32, rms_norm_eps=1e-6,
        max_position_embeddings=512, tie_word_embeddings=True, hidden_act="silu",
        rope_parameters={"rope_type": "default", "rope_theta": 1000000.0}), 0
    # gemma-3-270m: head_dim 256 > hidden/heads, 4 heads / 1 kv head, sliding 512 (pattern 6),
    # query_pre_attn_scalar 256, local rope 10000, global 1e6; shrunk: window 8, 3 layers with
    # one global layer in the middle.
    yield "gemma3", tf.Gemma3TextConfig(
        vocab_size=V, hidden_size=64, intermediate_size=96, num_hidden_layers=3,
        num_attention_heads=4, num_key_value_heads=1, head_dim=32, rms_norm_eps=1e-6,
        max_position_embeddings=512, sliding_window=8, query_pre_attn_scalar=32,
        layer_types=["sliding_attention", "full_attention", "sliding_attention"],
        rope_parameters={"sliding_attention": {"rope_type": "default", "rope_theta": 10000.0},
                         "full_attention": {"rope_type": "default", "rope_theta": 1000000.0}},
        hidden_activation="gelu_pytorch_tanh", tie_word_embeddings=True,
        final_logit_softcapping=None, attn_logit_softcapping=None), 0
    # Mistral-7B-v0.1: sliding_window 4096 < max positions; shrunk: window 8, T = 40.
    yield "mistral", tf.MistralConfig(
        vocab_size=V, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, head_dim=16, rms_norm_eps=1e-5,
        max_position_embeddings=512, sliding_window=8, tie_word_embeddings=False,
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0}), 0
    # Phi-3-mini-4k: fused qkv_proj / gate_up_proj, multi-head (32/32), sliding_window 2047,
    # untied; with Phi-4-mini's partial_rotary_factor 0.75. Shrunk: head_dim 16 (12 rotary
    # dims), window 8.
    yield "phi3", tf.Phi3Config(
        vocab_size=V, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=4, rms_norm_eps=1e-5,
        max_position_embeddings=512, original_max_position_embeddings=512, sliding_window=8,
        tie_word_embeddings=False, hidden_act="silu", pad_token_id=0, bos_token_id=1,
        eos_token_id=2, partial_rotary_factor=0.75,
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0,
                         "partial_rotary_factor": 0.75}), 0
    # gemma-2-2b: head_dim 256, 8 heads / 4 kv heads, window 4096 on even layers, soft-caps
    # 50 / 30, query_pre_attn_scalar 256. Shrunk: window 8, 3 layers (sliding, full, sliding);
    # soft-caps 4 / 6 so that they bite at these logit scales.
    yield "gemma2", tf.Gemma2Config(
        vocab_size=V, hidden_size=64, intermediate_size=96, num_hidden_layers=3,
        num_attention_heads=4, num_key_value_heads=2, head_dim=32, rms_norm_eps=1e-6,
        max_position_embeddings=512, sliding_window=8, query_pre_attn_scalar=32,
        hidden_activation="gelu_pytorch_tanh", tie_word_embeddings=True,
        attn_logit_softcapping=4.0, final_logit_softcapping=6.0,
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0}), 0
    # Mixtral-8x7B: 8 experts, top-2, GQA 32/8, no window; shrunk: 8 experts of width 64.
    yield "mixtral", tf.MixtralConfig(
        vocab_size=V, hidden_size=64, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, head_dim=16, num_local_experts=8,
        num_experts_per_tok=2, rms_norm_eps=1e-5, max_position_embeddings=512,
        sliding_window=None, tie_word_embeddings=False, hidden_act="silu",
        rope_parameters={"rope_type": "default", "rope_theta": 1000000.0}), 0
    # Qwen3-30B-A3B: 128 experts, top-8, width 768, norm_topk_prob, q/k norms, head_dim 128
    # (q width > hidden); shrunk: 16 experts, top-4, width 32.
    yield "qwen3_moe", tf.Qwen3MoeConfig(
        vocab_size=V, hidden_size=64, intermediate_size=128, moe_intermediate_size=32,
        num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, head_dim=32,
        num_experts=16, num_experts_per_tok=4, norm_topk_prob=True, decoder_sparse_step=1,
        mlp_only_layers=[], rms_norm_eps=1e-6, max_position_embeddings=512,
        tie_word_embeddings=False, hidden_act="silu",
        rope_parameters={"rope_type": "default", "rope_theta": 1000000.0}), 0

    # Qwen1.5-MoE-A2.7B: 60 experts, top-4 without renormalising, width 1408, a shared expert of
    # width 5632 behind a sigmoid gate, q/k/v biases; shrunk: 8 experts, top-2, widths 32 / 64.
    yield "qwen2_moe", tf.Qwen2MoeConfig(
        vocab_size=V, hidden_size=64, intermediate_size=128, moe_intermediate_size=32,
        shared_expert_intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, num_experts=8, num_experts_per_tok=2, norm_topk_prob=False,
        decoder_sparse_step=1, mlp_only_layers=[], rms_norm_eps=1e-6,
        max_position_embeddings=512, tie_word_embeddings=False, hidden_act="silu",
        use_sliding_window=False,
        rope_parameters={"rope_type": "default", "rope_theta": 1000000.0}), 0
    # Qwen3 with YaRN (the Qwen3 model cards' long-context setting: factor 4 over 32768);
    # shrunk: original length 16, so the 40-token prompt runs past it.
    yield "qwen3_yarn", tf.Qwen3Config(
        vocab_size=V, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, head_dim=32, rms_norm_eps=1e-6,
        max_position_embeddings=64, tie_word_embeddings=True, hidden_act="silu",
        rope_parameters={"rope_type": "yarn", "rope_theta": 10000.0, "factor": 4.0,
                         "original_max_position_embeddings": 16}), 0
    # Llama 3.1/3.2 RoPE scaling (factor 32 over 8192 for Llama 3.2); shrunk: factor 8 over 16.
    yield "llama3_rope", tf.LlamaConfig(
        vocab_size=V, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, head_dim=16, rms_norm_eps=1e-5,
        max_position_embeddings=128, tie_word_embeddings=True, hidden_act="silu",
        rope_parameters={"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0,
                         "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                         "original_max_position_embeddings": 16}), 0


MOE = {"mixtral": ("block_sparse_moe", "w1", "w3", "w2"),
       "qwen3_moe": ("mlp", "gate_proj", "up_proj", "down_proj"),
       "qwen2_moe": ("mlp", "gate_proj", "up_proj", "down_proj")}


def moe_shape(model, family, g):
    """MoE fixtures: a massive activation channel (hidden channel 0 of every embedding is about
    4, as the outlier channels of real LLMs) and a few salient MLP-input channels (norm weights
    x4), so AWQ has something to protect; block 0's last expert gets a router weight of -3 on
    channel 0, so no token is ever routed to it (the no-calibration-tokens case)."""
    with torch.no_grad():
        emb = model.model.embed_tokens.weight
        emb[:, 0] = 4.0 + 0.1 * torch.randn(emb.shape[0], generator=g)
        for layer in model.model.layers:
            layer.post_attention_layernorm.weight[1:4] *= 4.0
        r = model.model.layers[0].mlp.gate.weight
        r[-1, :] = 0.0
        r[-1, 0] = -3.0
        for p in model.parameters():
            p.copy_(p.half().float())


def legacy_moe_state_dict(sd, family):
    """Transformers 5 holds the experts as 3D gate_up_proj / down_proj tensors; checkpoints (and
    vLLM, and Transformers' own loader) use one module per expert: write those."""
    blk, gate, up, down = MOE[family]
    out = {}
    for k, v in sd.items():
        if ".mlp.experts.gate_up_proj" in k:
            pre = k.replace("mlp.experts.gate_up_proj", blk + ".experts.")
            inter = v.shape[1] // 2
            for e in range(v.shape[0]):
                out[f"{pre}{e}.{gate}.weight"] = v[e, :inter].contiguous()
                out[f"{pre}{e}.{up}.weight"] = v[e, inter:].contiguous()
        elif ".mlp.experts.down_proj" in k:
            pre = k.replace("mlp.experts.down_proj", blk + ".experts.")
            for e in range(v.shape[0]):
                out[f"{pre}{e}.{down}.weight"] = v[e].contiguous()
        elif ".mlp.gate.weight" in k:
            out[k.replace("mlp.gate", blk + ".gate")] = v
        else:
            out[k] = v
    return out


def randomize(model, family, g):
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                base = 0.0 if family.startswith("gemma") else 1.0  # Gemma: (1 + w)
                p.copy_(base + 0.2 * torch.randn(p.shape, generator=g))
            elif name.endswith("embed_tokens.weight"):
                p.copy_(torch.randn(p.shape, generator=g))
            elif p.dim() == 2:
                p.copy_(torch.randn(p.shape, generator=g) / p.shape[1] ** 0.5)
            else:
                p.copy_(0.1 * torch.randn(p.shape, generator=g))
            p.copy_(p.half().float())  # fp16-exact: the checkpoint stores these values


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "model")
    only = set(sys.argv[2:])
    for family, cfg, seed in families():
        if only and family not in only:
            continue
        out = os.path.join(root, "tiny_" + family)
        os.makedirs(out, exist_ok=True)
        g = torch.Generator().manual_seed(1234 + seed)
        cfg._attn_implementation = "eager"
        model = tf.AutoModelForCausalLM.from_config(cfg, attn_implementation="eager",
                                                   dtype=torch.float32)
        randomize(model, family, g)
        if family in MOE:
            moe_shape(model, family, g)
        model.eval()
        cfg.architectures = [type(model).__name__]
        cfg.save_pretrained(out)
        sd = {k: v.half().contiguous() for k, v in model.state_dict().items()}
        if cfg.tie_word_embeddings:
            sd.pop("lm_head.weight", None)
        if family in MOE:
            sd = legacy_moe_state_dict(sd, family)
        save_file(sd, os.path.join(out, "model.safetensors"), metadata={"format": "pt"})
        if family in MOE:  # the reference logits come from Transformers' own load of that file
            model = tf.AutoModelForCausalLM.from_pretrained(out, attn_implementation="eager",
                                                           dtype=torch.float32)
            model.eval()
        tensors = {}
        with torch.no_grad():
            for i, T in enumerate([40, 13]):
                ids = torch.randint(0, V, (1, T), generator=g)
                logits = model(ids).logits[0].float()
                tensors[f"tokens_{i}"] = ids[0].to(torch.int32)
                tensors[f"logits_{i}"] = logits.contiguous()
                print(f"{family} prompt {i}: T={T} argmax[-1]={int(logits[-1].argmax())} "
                      f"logit sd {float(logits.std()):.3f}")
        save_file(tensors, os.path.join(out, "logits.safetensors"),
                  metadata={"generator": "scripts/gen_arch_fixtures.py",
                            "transformers": tf.__version__})


if __name__ == "__main__":
    main()
