// Mixtral (MixtralForCausalLM): Mistral's attention (optional sliding window) with a
// mixture-of-experts MLP in every block: router block_sparse_moe.gate (hidden -> experts),
// experts block_sparse_moe.experts.E.{w1 (gate), w3 (up), w2 (down)}; softmax over all experts,
// top num_experts_per_tok, renormalised to sum 1 (always, as Transformers' MixtralTopKRouter).
//
// AWQ scale groups (AutoAWQ awq/models/mixtral.py, one change): input_layernorm -> q,k,v;
// v -> o (multi-head only); post_attention_layernorm -> every expert's w1 and w3 (one scale
// vector, compare: the whole MoE block); each expert's w3 -> its w2 on the calibration tokens
// routed to that expert. The change: AutoAWQ divides post_attention_layernorm by the scales
// without touching the router, so the folded model routes on x / s, not x (its routing changes);
// here the router's columns are multiplied by the same scales (router(x / s * s) = router(x)), so
// routing is unchanged up to the router's fp16 rounding. The router is never quantized
// (modules_to_not_convert "gate", as AutoAWQ writes).
#include <nlohmann/json.hpp>

#include "model/arch.h"
#include "model/config.h"

namespace awq {

namespace arch_detail {
// Shared by the MoE families: experts, experts per token and the expert width.
Status parse_moe_counts(const nlohmann::json& j, ModelConfig& c, const std::string& src,
                        const char* n_key, const char* width_key) {
  AWQ_ASSIGN(c.n_experts, opt_int(j, n_key, src, 0));
  AWQ_ASSIGN(c.top_k, opt_int(j, "num_experts_per_tok", src, 2));
  AWQ_ASSIGN(c.moe_intermediate, opt_int(j, width_key, src, c.intermediate));
  if (c.n_experts <= 0)
    return make_error(src, ": field \"", n_key, "\" must be a positive integer (a MoE model)");
  if (c.top_k <= 0 || c.top_k > c.n_experts)
    return make_error(src, ": field \"num_experts_per_tok\" = ", c.top_k, " must be in 1..",
                      n_key, " (", c.n_experts, ")");
  if (c.moe_intermediate <= 0)
    return make_error(src, ": field \"", width_key, "\" must be positive");
  return Status::Ok();
}
}  // namespace arch_detail

namespace {

Status parse_mixtral(const nlohmann::json& j, ModelConfig& c, const std::string& src) {
  AWQ_TRY(arch_detail::parse_activation(j, c, src, "hidden_act", Activation::Silu));
  AWQ_TRY(arch_detail::parse_moe_counts(j, c, src, "num_local_experts", "intermediate_size"));
  c.norm_topk_prob = true;
  AWQ_ASSIGN(const int w, arch_detail::opt_int(j, "sliding_window", src, 0));
  return arch_detail::parse_layer_types(j, c, src, std::vector<int>(c.n_layers, w), w);
}

}  // namespace

const Architecture& mixtral_architecture() {
  static const Architecture a = [] {
    Architecture a = llama_architecture();
    a.name = "MixtralForCausalLM";
    a.model_type = "mixtral";
    // llama.cpp writes Mixtral as "llama" with expert_count and ffn_*_exps tensors (q/k rows
    // permuted as for Llama); the converter picks this description for such a file.
    a.gguf_arch = "";
    a.gguf_permuted_qk = true;
    arch_detail::make_moe(a, {"block_sparse_moe.gate", "block_sparse_moe.experts.", "w1", "w3", "w2", "", ""});
    a.never_quantized = {"lm_head", "gate"};
    a.parse_config = parse_mixtral;
    return a;
  }();
  return a;
}

}  // namespace awq
