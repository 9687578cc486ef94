// Gemma 3 (text): RMSNorm with (1 + w) everywhere (block norms, q/k norms, final norm), a norm
// before and after both attention and MLP, q/k RMSNorm per head, GELU-tanh gated MLP,
// embeddings times sqrt(hidden), scores scaled by query_pre_attn_scalar^-1/2, sliding-window
// layers (layer_types, or every layer but each 6th) with their own RoPE base
// (rope_local_base_freq), tied head.
//
// AWQ scale groups (and why): input_layernorm -> q,k,v and pre_feedforward_layernorm -> gate,up
// (a norm that feeds linears directly: its (1 + w) multiplier absorbs 1/s exactly); v -> o when
// multi-head (no per-head norm between them: the q/k norms act on q and k only); up -> down.
// There is no group through post_attention_layernorm / post_feedforward_layernorm: they normalise
// the o_proj / down_proj outputs before the residual add, and RMSNorm(y * s) != RMSNorm(y) * s
// for a non-uniform s, so o_proj/down_proj output channels cannot carry a scale into them, and
// nothing reads their output except the residual stream.
#include <cmath>
#include <nlohmann/json.hpp>

#include "model/arch.h"
#include "model/config.h"

namespace awq {
namespace {

using json = nlohmann::json;

Status parse_gemma3(const json& j, ModelConfig& c, const std::string& src) {
  if (j.contains("text_config"))
    return make_error(src, ": field \"text_config\": a multimodal Gemma 3 config; only the text "
                           "model (Gemma3ForCausalLM) is supported");
  AWQ_TRY(arch_detail::parse_activation(j, c, src,
                                        j.contains("hidden_activation") ? "hidden_activation"
                                                                        : "hidden_act",
                                        Activation::GeluTanh));
  AWQ_TRY(arch_detail::require_unset(j, "use_bidirectional_attention", src,
                                     "bidirectional attention"));
  if (!j.contains("tie_word_embeddings") || j["tie_word_embeddings"].is_null())
    c.tie_embeddings = true;  // Gemma3TextConfig's default
  AWQ_ASSIGN(const int qpas, arch_detail::opt_int(j, "query_pre_attn_scalar", src, 256));
  if (qpas <= 0) return make_error(src, ": field \"query_pre_attn_scalar\" must be positive");
  c.attn_scale = (float)(1.0 / std::sqrt((double)qpas));
  AWQ_TRY(arch_detail::opt_softcap(j, "attn_logit_softcapping", src, 0.0f, c.attn_softcap));
  AWQ_TRY(arch_detail::opt_softcap(j, "final_logit_softcapping", src, 0.0f, c.final_softcap));
  AWQ_ASSIGN(const int w, arch_detail::opt_int(j, "sliding_window", src, 4096));
  int pattern = 6;
  for (const char* k : {"sliding_window_pattern", "_sliding_window_pattern"})
    if (j.contains(k) && !j[k].is_null()) {
      AWQ_ASSIGN(pattern, arch_detail::opt_int(j, k, src, 6));
      if (pattern <= 0) return make_error(src, ": field \"", k, "\" must be positive");
    }
  std::vector<int> fb(c.n_layers, 0);
  for (int l = 0; l < c.n_layers; ++l) fb[l] = (l + 1) % pattern ? w : 0;
  AWQ_TRY(arch_detail::parse_layer_types(j, c, src, fb, w));
  // RoPE: global layers use rope_theta (+ rope_scaling); sliding layers rope_local_base_freq,
  // unscaled. Transformers 5 writes both under rope_parameters.{full,sliding}_attention.
  if (auto it = j.find("rope_parameters"); it != j.end() && it->is_object() &&
                                           (it->contains("full_attention") ||
                                            it->contains("sliding_attention"))) {
    for (const auto& [k, v] : it->items())
      if (k != "full_attention" && k != "sliding_attention")
        return make_error(src, ": rope_parameters.", k, " is not a layer type (expected "
                               "full_attention, sliding_attention)");
    if (auto f = it->find("full_attention"); f != it->end()) {
      json wrap = {{"rope_parameters", *f}};
      for (const char* k : {"max_position_embeddings", "original_max_position_embeddings"})
        if (j.contains(k)) wrap[k] = j[k];  // the pretraining length of a scaled RoPE
      AWQ_TRY(parse_rope_fields(wrap, src, 1e6f, c.rope_theta, c.rope_scaling,
                                "rope_parameters.full_attention"));
    }
    float local = 10000.0f;
    if (auto s = it->find("sliding_attention"); s != it->end()) {
      json wrap = {{"rope_parameters", *s}};
      RopeScaling rs;
      AWQ_TRY(parse_rope_fields(wrap, src, 10000.0f, local, rs, "rope_parameters.sliding_attention"));
      if (rs.kind != RopeScaling::Kind::None)
        return make_error(src, ": rope_parameters.sliding_attention: rope scaling on the "
                               "sliding-window layers is not supported");
    }
    c.rope_local_theta = local;
  } else {
    auto it2 = j.find("rope_local_base_freq");
    c.rope_local_theta = 10000.0f;
    if (it2 != j.end() && !it2->is_null()) {
      if (!it2->is_number() || it2->get<double>() <= 0)
        return make_error(src, ": field \"rope_local_base_freq\" must be a positive number, got ",
                          it2->dump());
      c.rope_local_theta = it2->get<float>();
    }
  }
  return Status::Ok();
}

}  // namespace

const Architecture& gemma3_architecture() {
  static const Architecture a = [] {
    Architecture a;
    a.name = "Gemma3ForCausalLM";
    a.model_type = "gemma3_text";
    a.gguf_arch = "gemma3";
    a.norm = NormKind::RmsPlusOne;
    a.embed_scale_sqrt_hidden = true;
    a.gguf_norm_plus_one = true;
    a.rope_per_layer_type = true;
    a.block_norms = {
        {NormSlot::Attn, "input_layernorm.weight", "attn_norm.weight"},
        {NormSlot::Q, "self_attn.q_norm.weight", "attn_q_norm.weight"},
        {NormSlot::K, "self_attn.k_norm.weight", "attn_k_norm.weight"},
        {NormSlot::PostAttn, "post_attention_layernorm.weight", "post_attention_norm.weight"},
        {NormSlot::Mlp, "pre_feedforward_layernorm.weight", "ffn_norm.weight"},
        {NormSlot::PostMlp, "post_feedforward_layernorm.weight", "post_ffw_norm.weight"},
    };
    a.linears = arch_detail::llama_linears();
    a.scale_groups = arch_detail::llama_scale_groups();
    a.never_quantized = {"lm_head"};
    a.parse_config = parse_gemma3;
    return a;
  }();
  return a;
}

}  // namespace awq
