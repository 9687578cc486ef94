// Model description parsed from a Hugging Face config.json, and the table of
// supported architectures (tensor names, scale groups for the AWQ search).
#pragma once
#include <string>
#include <vector>

#include "core/status.h"
#include "model/arch.h"

namespace awq {

struct RopeScaling {
  enum class Kind { None, Linear, Llama3, Yarn } kind = Kind::None;
  float factor = 1.0f;
  float low_freq_factor = 1.0f;   // llama3
  float high_freq_factor = 4.0f;  // llama3
  int original_max_position = 8192;  // llama3, yarn
  // yarn (Transformers' _compute_yarn_parameters): the ramp between extrapolated and
  // interpolated frequencies over the correction range of beta_fast..beta_slow rotations
  // (floored/ceiled when truncate), and cos/sin multiplied by attention_factor.
  float beta_fast = 32.0f, beta_slow = 1.0f;
  bool truncate = true;
  float attention_factor = 1.0f;
};

struct QuantizationInfo {  // from config.json "quantization_config" (AWQ checkpoints)
  bool present = false;
  // awq: AutoAWQ GEMM tensors; compressed-tensors: pack-quantized (io/compressed_tensors.h)
  enum class Method { Awq, CompressedTensors } method = Method::Awq;
  int bits = 4;
  int group_size = 128;
  bool zero_point = true;  // compressed-tensors: !symmetric
  std::string version;  // "gemm"
  std::vector<std::string> modules_to_not_convert;
};

struct ModelConfig {
  const Architecture* arch = nullptr;
  std::string model_type;
  int hidden = 0;         // hidden_size
  int intermediate = 0;   // intermediate_size
  int n_layers = 0;
  int n_heads = 0;
  int n_kv_heads = 0;
  int head_dim = 0;
  int vocab = 0;
  int max_position = 2048;
  float rms_eps = 1e-5f;
  float rope_theta = 10000.0f;
  RopeScaling rope_scaling;
  bool tie_embeddings = false;
  int bos_id = -1;
  std::vector<int> eos_ids;
  QuantizationInfo quant;
  // Block recipe details read from the family's fields (model/arch.h).
  Activation act = Activation::Silu;
  std::vector<int> layer_window;  // per layer: 0 = full causal attention, else keys in window
  float rope_local_theta = 0.0f;  // RoPE base of sliding-window layers (Gemma 3); 0 = rope_theta
  int rotary_dim = 0;             // RoPE on the first rotary_dim dims of a head (Phi partial
                                  // rotary); 0 = all head_dim dims
  float attn_scale = 0.0f;        // score scale; 0 = 1/sqrt(head_dim)
  float embed_scale = 1.0f;       // embeddings times this (Gemma: sqrt(hidden))
  float attn_softcap = 0.0f;      // scores = cap * tanh(scores / cap) when > 0 (Gemma 2)
  float final_softcap = 0.0f;     // logits = cap * tanh(logits / cap) when > 0 (Gemma 2)
  // Mixture of experts (arch->moe): experts per block, experts per token, expert MLP width,
  // and whether the top-k routing weights are renormalised to sum 1 (Mixtral: always).
  int n_experts = 0;
  int top_k = 0;
  int moe_intermediate = 0;
  bool norm_topk_prob = true;
  int shared_intermediate = 0;  // the shared expert's width (Qwen 2-MoE); 0: none
  std::string json_text;  // the original config.json text

  int window_of(int layer) const {
    return layer >= 0 && layer < (int)layer_window.size() ? layer_window[layer] : 0;
  }
  bool local_rope(int layer) const { return rope_local_theta > 0.0f && window_of(layer) > 0; }
  int rope_dims() const { return rotary_dim > 0 ? rotary_dim : head_dim; }
};

// Parse `dir`/config.json (or a config.json path). Errors name the file and field.
Expected<ModelConfig> load_model_config(const std::string& dir);
Expected<ModelConfig> parse_model_config(const std::string& json_text, const std::string& source);

// RoPE fields of a config object: top-level "rope_theta" + "rope_scaling" (Transformers 4) or
// "rope_parameters": {"rope_theta", "rope_type", ...} (Transformers 5). Exposed for the families.
Status parse_rope_fields(const nlohmann::json& j, const std::string& src, float def_theta,
                         float& theta, RopeScaling& scaling, const char* where);

}  // namespace awq
