// Weights of a decoder-only transformer (Llama family), loaded from an HF directory
// (fp32/fp16/bf16 safetensors) or an AutoAWQ GEMM checkpoint.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "core/status.h"
#include "io/safetensors.h"
#include "model/config.h"

namespace awq {

struct W4Matrix;

struct Linear {
  int in = 0, out = 0;
  std::vector<float> weight;      // [out][in] fp32 (empty when only w4 is held)
  std::vector<float> bias;        // [out], empty when the layer has none
  std::shared_ptr<W4Matrix> w4;   // AWQ 4-bit weights for the fast kernels (optional)
};

struct BlockWeights {
  std::vector<float> attn_norm;   // [hidden] input_layernorm
  std::vector<float> mlp_norm;    // [hidden] post_attention_layernorm
  Linear q, k, v, o, gate, up, down;
  Linear& linear(const std::string& short_name);
  const Linear& linear(const std::string& short_name) const;
};

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
};

struct LoadOptions {
  // AWQ checkpoints: keep 4-bit weights for the fast kernels (true) or dequantize to fp32.
  bool keep_w4 = false;
};

// Load one block's weights (fp32, dequantized if the checkpoint is AWQ).
Expected<BlockWeights> load_block(const SafeTensors& st, const ModelConfig& cfg, int layer,
                                  const LoadOptions& opt = {});
// Load a whole model directory.
Expected<Model> load_model(const std::string& dir, const LoadOptions& opt = {});
// Non-block tensors (embeddings, final norm, lm_head).
Status load_globals(const SafeTensors& st, Model& m);

}  // namespace awq
