// Weights of a decoder-only transformer (Llama family), loaded from an HF directory
// (fp32/fp16/bf16 safetensors) or an AutoAWQ GEMM checkpoint.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "core/status.h"
#include "io/safetensors.h"
#include "kernels/q8_matmul.h"
#include "model/config.h"

namespace awq {

struct W4Matrix;

struct Linear {
  int in = 0, out = 0;
  std::vector<float> weight;      // [out][in] fp32 (empty when only w4 is held)
  std::vector<float> bias;        // [out], empty when the layer has none
  std::shared_ptr<W4Matrix> w4;   // AWQ 4-bit weights for the fast kernels (optional)
};

// One expert of a mixture-of-experts MLP (model/arch.h MoeNames).
struct ExpertWeights {
  Linear gate, up, down;
  Linear& linear(const std::string& short_name) {
    return short_name == "gate_proj" ? gate : short_name == "up_proj" ? up : down;
  }
};

// Norm weights are held as the effective multiplier (1 + w for NormKind::RmsPlusOne).
// The norms an architecture does not have stay empty.
struct BlockWeights {
  int layer = 0;                  // index in the model (per-layer window / RoPE base)
  std::vector<float> attn_norm;   // [hidden] before attention (input_layernorm)
  std::vector<float> mlp_norm;    // [hidden] before the MLP (Llama: post_attention_layernorm)
  std::vector<float> post_attn_norm, post_mlp_norm;  // [hidden] Gemma 2/3
  std::vector<float> q_norm, k_norm;                 // [head_dim] Qwen 3, Gemma 3
  Linear q, k, v, o, gate, up, down;  // gate/up/down empty in MoE blocks
  Linear router;                       // MoE: [n_experts][hidden], fp32 (never quantized)
  std::vector<ExpertWeights> experts;  // MoE: n_experts
  ExpertWeights shared;                // MoE with a shared expert (Qwen 2-MoE); else empty
  Linear shared_gate;                  // its [1][hidden] gate, fp32 (never quantized)
  Linear& linear(const std::string& short_name);
  const Linear& linear(const std::string& short_name) const;
  std::vector<float>& norm(NormSlot s);
  const std::vector<float>& norm(NormSlot s) const;
};

// Width of a block norm: head_dim for q/k norms, else hidden.
int norm_width(const ModelConfig& cfg, NormSlot s);
// The stored form of a norm weight held in memory (the effective multiplier minus 1 for (1 + w)).
std::vector<float> stored_norm(const ModelConfig& cfg, const std::vector<float>& held);

struct Model {
  ModelConfig cfg;
  std::vector<float> embed;       // [vocab][hidden]
  std::vector<BlockWeights> blocks;
  std::vector<float> final_norm;  // [hidden]
  std::vector<float> lm_head;     // [vocab][hidden]; empty when tied to embed
  const float* lm_head_weight() const { return lm_head.empty() ? embed.data() : lm_head.data(); }
  // fp16 copy of the lm_head when the checkpoint stores it in fp16 and the model was loaded
  // for inference (LoadOptions::keep_w4): decode reads half the bytes (exact: same values).
  std::vector<uint16_t> lm_head_f16;
  // 8-bit copy of the lm_head for decode (LoadOptions::lm_head == Q8 with keep_w4): int8 codes
  // in blocks of 32 along hidden, one fp16 scale each (kernels/q8_matmul.h). When present,
  // lm_head_f16 is not filled; used only by lm_head_decode (<= 16 rows), never by
  // lm_head_forward. Empty otherwise.
  Q8Matrix lm_head_q8;
};

// Format of the decode lm_head of a model loaded with keep_w4.
//  F16: the head as the file stores it (fp16 bits when the file has fp16, else fp32): exact.
//  Q8:  int8 per 32-block with fp16 scales (~1.06 bytes per weight; docs/KERNELS.md).
//  Default: AWQ_LM_HEAD=f16|q8 read once (unknown values warn on stderr), else Q8.
enum class LmHeadFormat { Default, F16, Q8 };
LmHeadFormat lm_head_format_from_env();
// What AWQ_LM_HEAD=<requested> selects (nullptr/empty: Q8); sets *warning on unknown values.
LmHeadFormat resolve_lm_head_format(const char* requested, std::string* warning);
const char* lm_head_format_name(LmHeadFormat f);

struct LoadOptions {
  // AWQ checkpoints: keep 4-bit weights for the fast kernels (true) or dequantize to fp32.
  bool keep_w4 = false;
  // Decode lm_head format (only with keep_w4; otherwise the head stays fp32). Default follows
  // AWQ_LM_HEAD. Evaluation (ppl, kl) asks for F16: it never uses the 8-bit head.
  LmHeadFormat lm_head = LmHeadFormat::Default;
};

// Input/output width of a block linear by short name (q_proj: hidden -> n_heads * head_dim).
struct LinearShape {
  int in, out;
};
LinearShape linear_shape(const ModelConfig& cfg, const std::string& short_name);

// Load one block's weights (fp32, dequantized if the checkpoint is AWQ).
Expected<BlockWeights> load_block(const SafeTensors& st, const ModelConfig& cfg, int layer,
                                  const LoadOptions& opt = {});
// Load a whole model directory.
Expected<Model> load_model(const std::string& dir, const LoadOptions& opt = {});
// Non-block tensors (embeddings, final norm, lm_head).
Status load_globals(const SafeTensors& st, Model& m);

}  // namespace awq
