// Mistral: the Llama block with sliding-window attention on every layer ("sliding_window";
// null means full attention).
#include <nlohmann/json.hpp>

#include "model/arch.h"
#include "model/config.h"

namespace awq {
namespace {

Status parse_mistral(const nlohmann::json& j, ModelConfig& c, const std::string& src) {
  AWQ_TRY(arch_detail::parse_activation(j, c, src, "hidden_act", Activation::Silu));
  AWQ_ASSIGN(const int w, arch_detail::opt_int(j, "sliding_window", src, 0));
  return arch_detail::parse_layer_types(j, c, src, std::vector<int>(c.n_layers, w), w);
}

}  // namespace

const Architecture& mistral_architecture() {
  static const Architecture a = [] {
    Architecture a = llama_architecture();
    a.name = "MistralForCausalLM";
    a.model_type = "mistral";
    a.gguf_arch = "";  // llama.cpp writes Mistral models as "llama" (no window metadata)
    a.parse_config = parse_mistral;
    return a;
  }();
  return a;
}

}  // namespace awq
