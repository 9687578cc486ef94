// Llama (and SmolLM2, Llama 3.x with rope scaling): pre-norm RMSNorm, SwiGLU, RoPE.
#include <nlohmann/json.hpp>

#include "model/arch.h"
#include "model/config.h"

namespace awq {
namespace {

Status parse_llama(const nlohmann::json& j, ModelConfig& c, const std::string& src) {
  AWQ_TRY(arch_detail::parse_activation(j, c, src, "hidden_act", Activation::Silu));
  AWQ_TRY(arch_detail::require_unset(j, "sliding_window", src, "sliding-window attention"));
  return arch_detail::parse_layer_types(j, c, src, std::vector<int>(c.n_layers, 0), 0);
}

}  // namespace

const Architecture& llama_architecture() {
  static const Architecture a = [] {
    Architecture a;
    a.name = "LlamaForCausalLM";
    a.model_type = "llama";
    a.gguf_arch = "llama";
    a.gguf_permuted_qk = true;
    a.block_norms = arch_detail::llama_norms();
    a.linears = arch_detail::llama_linears();
    a.scale_groups = arch_detail::llama_scale_groups();
    a.never_quantized = {"lm_head"};
    a.parse_config = parse_llama;
    return a;
  }();
  return a;
}

}  // namespace awq
