// Gemma 2: Gemma 3's block without the q/k norms and without a second RoPE base — RMSNorm with
// (1 + w) everywhere, a norm before and after both attention and MLP, GELU-tanh gated MLP,
// embeddings times sqrt(hidden), scores scaled by query_pre_attn_scalar^-1/2, attention-logit
// soft-capping (attn_logit_softcapping, default 50) and final-logit soft-capping
// (final_logit_softcapping, default 30), sliding-window attention on alternating layers (layer
// 0, 2, ...: layer_types, or Transformers' default rule), tied head.
//
// AWQ scale groups: Gemma 3's (arch_gemma3.cpp explains why none goes through the post-norms):
// input_layernorm -> q,k,v; v -> o (multi-head); pre_feedforward_layernorm -> gate,up; up -> down.
// The attention soft-cap is inside the compared attention module, so the grid scores it.
#include <cmath>
#include <nlohmann/json.hpp>

#include "model/arch.h"
#include "model/config.h"

namespace awq {
namespace {

using json = nlohmann::json;

Status parse_gemma2(const json& j, ModelConfig& c, const std::string& src) {
  AWQ_TRY(arch_detail::parse_activation(j, c, src,
                                        j.contains("hidden_activation") ? "hidden_activation"
                                                                        : "hidden_act",
                                        Activation::GeluTanh));
  AWQ_TRY(arch_detail::require_unset(j, "attention_bias", src, "q/k/v/o biases"));
  if (!j.contains("tie_word_embeddings") || j["tie_word_embeddings"].is_null())
    c.tie_embeddings = true;  // Gemma2Config's default
  AWQ_ASSIGN(const int qpas, arch_detail::opt_int(j, "query_pre_attn_scalar", src, 256));
  if (qpas <= 0) return make_error(src, ": field \"query_pre_attn_scalar\" must be positive");
  c.attn_scale = (float)(1.0 / std::sqrt((double)qpas));
  AWQ_TRY(arch_detail::opt_softcap(j, "attn_logit_softcapping", src, 50.0f, c.attn_softcap));
  AWQ_TRY(arch_detail::opt_softcap(j, "final_logit_softcapping", src, 30.0f, c.final_softcap));
  AWQ_ASSIGN(const int w, arch_detail::opt_int(j, "sliding_window", src, 4096));
  std::vector<int> fb(c.n_layers, 0);
  for (int l = 0; l < c.n_layers; ++l) fb[l] = (l + 1) % 2 ? w : 0;  // even layers slide
  return arch_detail::parse_layer_types(j, c, src, fb, w);
}

}  // namespace

const Architecture& gemma2_architecture() {
  static const Architecture a = [] {
    Architecture a = gemma3_architecture();
    a.name = "Gemma2ForCausalLM";
    a.model_type = "gemma2";
    a.gguf_arch = "gemma2";
    a.rope_per_layer_type = false;
    a.block_norms = {
        {NormSlot::Attn, "input_layernorm.weight", "attn_norm.weight"},
        {NormSlot::PostAttn, "post_attention_layernorm.weight", "post_attention_norm.weight"},
        {NormSlot::Mlp, "pre_feedforward_layernorm.weight", "ffn_norm.weight"},
        {NormSlot::PostMlp, "post_feedforward_layernorm.weight", "post_ffw_norm.weight"},
    };
    a.parse_config = parse_gemma2;
    return a;
  }();
  return a;
}

}  // namespace awq
