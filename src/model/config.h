// Model description parsed from a Hugging Face config.json, and the table of
// supported architectures (tensor names, scale groups for the AWQ search).
#pragma once
#include <string>
#include <vector>

#include "core/status.h"

namespace awq {

struct RopeScaling {
  enum class Kind { None, Linear, Llama3 } kind = Kind::None;
  float factor = 1.0f;
  float low_freq_factor = 1.0f;   // llama3
  float high_freq_factor = 4.0f;  // llama3
  int original_max_position = 8192;
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

// One AWQ scale group: the op whose output feeds `linears` (a norm or a linear),
// the linears that share one scale vector, and the module whose output the search compares.
struct ScaleGroup {
  enum class Prev { AttnNorm, MlpNorm, Linear } prev_kind;
  std::string prev_linear;            // when prev_kind == Linear: e.g. "v_proj"
  std::vector<std::string> linears;   // e.g. {"q_proj", "k_proj", "v_proj"}
  enum class Compare { Attention, Mlp, Linear } compare;
  bool requires_same_shape = false;   // v -> o only for multi-head attention
};

struct Architecture {
  std::string name;                   // "LlamaForCausalLM"
  bool qkv_bias = false;
  std::vector<ScaleGroup> scale_groups;
};

// The supported architectures; an error for an unknown name lists them.
const std::vector<Architecture>& supported_architectures();
Expected<const Architecture*> find_architecture(const std::string& name);

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
  std::string json_text;  // the original config.json text
};

// Parse `dir`/config.json (or a config.json path). Errors name the file and field.
Expected<ModelConfig> load_model_config(const std::string& dir);
Expected<ModelConfig> parse_model_config(const std::string& json_text, const std::string& source);

// The linear layers of one decoder block, by short name, in execution order.
const std::vector<std::string>& block_linear_names();  // q_proj k_proj v_proj o_proj gate_proj up_proj down_proj
// Full tensor-name prefix of a block linear: "model.layers.3.self_attn.q_proj".
std::string linear_prefix(int layer, const std::string& short_name);

}  // namespace awq
