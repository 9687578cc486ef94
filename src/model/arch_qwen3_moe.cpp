// Qwen 3-MoE (Qwen3MoeForCausalLM): Qwen 3's attention (q/k RMSNorm per head) with a
// mixture-of-experts MLP: router mlp.gate, experts mlp.experts.E.{gate,up,down}_proj of width
// moe_intermediate_size; softmax over all experts, top num_experts_per_tok, renormalised only
// when norm_topk_prob (Qwen3-30B-A3B: true; the config class default: false).
//
// AWQ scale groups: Mixtral's (arch_mixtral.cpp), with the same router compensation. Not
// implemented (error naming the field): dense layers between the MoE ones (mlp_only_layers
// non-empty, decoder_sparse_step != 1).
#include <nlohmann/json.hpp>

#include "model/arch.h"
#include "model/config.h"

namespace awq {

namespace arch_detail {
Status parse_qwen_window(const nlohmann::json& j, ModelConfig& c, const std::string& src);
Status parse_moe_counts(const nlohmann::json& j, ModelConfig& c, const std::string& src,
                        const char* n_key, const char* width_key);

// The MoE fields of the Qwen MoE families (Qwen 3-MoE, Qwen 2-MoE): experts, experts per token
// and their width, norm_topk_prob (config class default false), no dense layers, the window.
Status parse_qwen_moe(const nlohmann::json& j, ModelConfig& c, const std::string& src) {
  AWQ_TRY(parse_activation(j, c, src, "hidden_act", Activation::Silu));
  // "num_experts" in the released configs; Transformers 5 saves it as "num_local_experts"
  const bool t5 = !j.contains("num_experts") && j.contains("num_local_experts");
  AWQ_TRY(parse_moe_counts(j, c, src, t5 ? "num_local_experts" : "num_experts",
                           "moe_intermediate_size"));
  c.norm_topk_prob = false;
  if (auto it = j.find("norm_topk_prob"); it != j.end() && !it->is_null()) {
    if (!it->is_boolean())
      return make_error(src, ": field \"norm_topk_prob\" must be true/false, got ", it->dump());
    c.norm_topk_prob = it->get<bool>();
  }
  if (auto it = j.find("mlp_only_layers"); it != j.end() && !it->is_null() &&
                                           !(it->is_array() && it->empty()))
    return make_error(src, ": field \"mlp_only_layers\" = ", it->dump(),
                      " (dense MLP layers in a MoE model) is not implemented");
  AWQ_ASSIGN(const int step, opt_int(j, "decoder_sparse_step", src, 1));
  if (step != 1)
    return make_error(src, ": field \"decoder_sparse_step\" = ", step,
                      " (dense MLP layers in a MoE model) is not implemented (supported: 1)");
  return parse_qwen_window(j, c, src);
}
}  // namespace arch_detail

namespace {

Status parse_qwen3_moe(const nlohmann::json& j, ModelConfig& c, const std::string& src) {
  AWQ_TRY(arch_detail::require_unset(j, "shared_expert_intermediate_size", src,
                                     "a shared expert (Qwen 2-MoE)"));
  return arch_detail::parse_qwen_moe(j, c, src);
}

}  // namespace

const Architecture& qwen3_moe_architecture() {
  static const Architecture a = [] {
    Architecture a = qwen3_architecture();
    a.name = "Qwen3MoeForCausalLM";
    a.model_type = "qwen3_moe";
    a.gguf_arch = "qwen3moe";
    arch_detail::make_moe(a, {"mlp.gate", "mlp.experts.", "gate_proj", "up_proj", "down_proj", "", ""});
    // "mlp.gate", not "gate": modules_to_not_convert match as substrings (here and in vLLM), and
    // "gate" would also match every expert's gate_proj.
    a.never_quantized = {"lm_head", "mlp.gate"};
    a.parse_config = parse_qwen3_moe;
    return a;
  }();
  return a;
}

}  // namespace awq
