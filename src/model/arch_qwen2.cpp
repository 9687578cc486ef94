// Qwen 2 / 2.5: the Llama block with q/k/v biases; optional sliding window on the layers from
// max_window_layers on ("use_sliding_window").
#include <nlohmann/json.hpp>

#include "model/arch.h"
#include "model/config.h"

namespace awq {

namespace arch_detail {
// Qwen 2 and Qwen 3: window of layer l = sliding_window if use_sliding_window and
// l >= max_window_layers (Transformers' layer_types rule), unless "layer_types" is given.
Status parse_qwen_window(const nlohmann::json& j, ModelConfig& c, const std::string& src) {
  bool use = false;
  if (auto it = j.find("use_sliding_window"); it != j.end() && !it->is_null()) {
    if (!it->is_boolean())
      return make_error(src, ": field \"use_sliding_window\" must be true/false, got ", it->dump());
    use = it->get<bool>();
  }
  AWQ_ASSIGN(int w, opt_int(j, "sliding_window", src, 0));
  if (!use) w = 0;
  AWQ_ASSIGN(const int first, opt_int(j, "max_window_layers", src, c.n_layers));
  std::vector<int> fb(c.n_layers, 0);
  for (int l = 0; l < c.n_layers; ++l)
    if (w > 0 && l >= first) fb[l] = w;
  return parse_layer_types(j, c, src, fb, w);
}
}  // namespace arch_detail

namespace {

Status parse_qwen2(const nlohmann::json& j, ModelConfig& c, const std::string& src) {
  AWQ_TRY(arch_detail::parse_activation(j, c, src, "hidden_act", Activation::Silu));
  return arch_detail::parse_qwen_window(j, c, src);
}

}  // namespace

const Architecture& qwen2_architecture() {
  static const Architecture a = [] {
    Architecture a = llama_architecture();
    a.name = "Qwen2ForCausalLM";
    a.model_type = "qwen2";
    a.gguf_arch = "qwen2";
    a.gguf_permuted_qk = false;
    a.qkv_bias = true;
    a.parse_config = parse_qwen2;
    return a;
  }();
  return a;
}

}  // namespace awq
