// Qwen 3 dense: the Llama block (no q/k/v bias) with an RMSNorm over head_dim on every q and k
// head before RoPE (q_norm, k_norm). The q/k norms sit after the projections, so the AWQ scale
// groups are Llama's.
#include <nlohmann/json.hpp>

#include "model/arch.h"
#include "model/config.h"

namespace awq {

namespace arch_detail {
Status parse_qwen_window(const nlohmann::json& j, ModelConfig& c, const std::string& src);
}

namespace {

Status parse_qwen3(const nlohmann::json& j, ModelConfig& c, const std::string& src) {
  AWQ_TRY(arch_detail::parse_activation(j, c, src, "hidden_act", Activation::Silu));
  return arch_detail::parse_qwen_window(j, c, src);
}

}  // namespace

const Architecture& qwen3_architecture() {
  static const Architecture a = [] {
    Architecture a = llama_architecture();
    a.name = "Qwen3ForCausalLM";
    a.model_type = "qwen3";
    a.gguf_arch = "qwen3";
    a.gguf_permuted_qk = false;
    a.block_norms = {
        {NormSlot::Attn, "input_layernorm.weight", "attn_norm.weight"},
        {NormSlot::Q, "self_attn.q_norm.weight", "attn_q_norm.weight"},
        {NormSlot::K, "self_attn.k_norm.weight", "attn_k_norm.weight"},
        {NormSlot::Mlp, "post_attention_layernorm.weight", "ffn_norm.weight"},
    };
    a.parse_config = parse_qwen3;
    return a;
  }();
  return a;
}

}  // namespace awq
