// Qwen 2-MoE (Qwen2MoeForCausalLM: Qwen1.5-MoE-A2.7B, Qwen2-57B-A14B): Qwen 2's attention
// (q/k/v biases, optional window) with a mixture-of-experts MLP: router mlp.gate, experts
// mlp.experts.E.{gate,up,down}_proj of width moe_intermediate_size (softmax, top
// num_experts_per_tok, renormalised only when norm_topk_prob, default false), plus a shared
// expert mlp.shared_expert.{gate,up,down}_proj of width shared_expert_intermediate_size that
// every token goes through, scaled by sigmoid(mlp.shared_expert_gate(x)) (a hidden -> 1 linear).
//
// AWQ scale groups (AutoAWQ awq/models/qwen2_moe.py): input_layernorm -> q,k,v; v -> o (MHA);
// post_attention_layernorm -> every expert's gate/up and the shared expert's gate/up (one scale
// vector, compare: the whole MoE block; the router's and the shared expert gate's columns are
// multiplied by the scales so both still see x); each expert's up -> down on its routed tokens;
// the shared expert's up -> down on every token. Router and shared_expert_gate stay fp16.
//
// Not implemented (error naming the field): dense layers between the MoE ones (mlp_only_layers,
// decoder_sparse_step != 1).
#include <nlohmann/json.hpp>

#include "model/arch.h"
#include "model/config.h"

namespace awq {
namespace arch_detail {
Status parse_qwen_moe(const nlohmann::json& j, ModelConfig& c, const std::string& src);
}  // namespace arch_detail

namespace {

Status parse_qwen2_moe(const nlohmann::json& j, ModelConfig& c, const std::string& src) {
  AWQ_ASSIGN(c.shared_intermediate,
             arch_detail::opt_int(j, "shared_expert_intermediate_size", src, 0));
  if (c.shared_intermediate <= 0)
    return make_error(src, ": field \"shared_expert_intermediate_size\" must be a positive "
                           "integer (Qwen 2-MoE's shared expert)");
  return arch_detail::parse_qwen_moe(j, c, src);
}

}  // namespace

const Architecture& qwen2_moe_architecture() {
  static const Architecture a = [] {
    Architecture a = qwen2_architecture();
    a.name = "Qwen2MoeForCausalLM";
    a.model_type = "qwen2_moe";
    a.gguf_arch = "qwen2moe";
    MoeNames n{"mlp.gate", "mlp.experts.", "gate_proj", "up_proj", "down_proj", "", ""};
    n.shared = "mlp.shared_expert.";
    n.shared_gate = "mlp.shared_expert_gate";
    arch_detail::make_moe(a, n);
    // "mlp.gate" does not match "mlp.shared_expert_gate" (substring rule, as vLLM's)
    a.never_quantized = {"lm_head", "mlp.gate", "shared_expert_gate"};
    a.parse_config = parse_qwen2_moe;
    return a;
  }();
  return a;
}

}  // namespace awq
