// The registry of supported architectures and the pieces the family files share.
#include <utility>
#include <nlohmann/json.hpp>

#include "model/arch.h"
#include "model/config.h"

namespace awq {

using json = nlohmann::json;

const LinearName* Architecture::find_linear(const std::string& short_name) const {
  for (const auto& l : linears)
    if (l.name == short_name) return &l;
  return nullptr;
}

bool Architecture::has_norm(NormSlot s) const {
  for (const auto& n : block_norms)
    if (n.slot == s) return true;
  return false;
}

const FusedLinear* Architecture::fused_of(const std::string& short_name, int* index) const {
  for (const auto& f : fused)
    for (size_t i = 0; i < f.parts.size(); ++i)
      if (f.parts[i] == short_name) {
        if (index) *index = (int)i;
        return &f;
      }
  return nullptr;
}

std::string Architecture::linear_prefix(int layer, const std::string& short_name) const {
  const std::string p = "model.layers." + std::to_string(layer) + ".";
  if (const FusedLinear* f = fused_of(short_name)) return p + f->hf;
  const LinearName* l = find_linear(short_name);
  return p + (l ? l->hf : short_name);
}

std::string Architecture::expert_prefix(int layer, int expert, const std::string& n) const {
  const std::string& m = n == "gate_proj" ? moe_names.gate : n == "up_proj" ? moe_names.up
                                                                            : moe_names.down;
  return "model.layers." + std::to_string(layer) + "." + moe_names.experts +
         std::to_string(expert) + "." + m;
}

std::string Architecture::router_prefix(int layer) const {
  return "model.layers." + std::to_string(layer) + "." + moe_names.router;
}

std::string Architecture::shared_prefix(int layer, const std::string& n) const {
  return "model.layers." + std::to_string(layer) + "." + moe_names.shared + n;
}

std::string Architecture::shared_gate_prefix(int layer) const {
  return "model.layers." + std::to_string(layer) + "." + moe_names.shared_gate;
}

const std::vector<Architecture>& supported_architectures() {
  // The one table: adding a family = one arch_<family>.cpp + one line here.
  static const std::vector<Architecture> archs = {
      llama_architecture(), mistral_architecture(), qwen2_architecture(),
      qwen3_architecture(), gemma3_architecture(), phi3_architecture(), gemma2_architecture(),
      mixtral_architecture(), qwen3_moe_architecture(), qwen2_moe_architecture(),
  };
  return archs;
}

Expected<const Architecture*> find_architecture(const std::string& name) {
  for (const auto& a : supported_architectures())
    if (a.name == name) return &a;
  std::string list;
  for (const auto& a : supported_architectures()) list += (list.empty() ? "" : ", ") + a.name;
  return make_error("unsupported architecture \"", name, "\" (supported: ", list, ")");
}

Expected<const Architecture*> find_gguf_architecture(const std::string& gguf_arch) {
  for (const auto& a : supported_architectures())
    if (!a.gguf_arch.empty() && a.gguf_arch == gguf_arch) return &a;
  std::string list;
  for (const auto& a : supported_architectures())
    if (!a.gguf_arch.empty()) list += (list.empty() ? "" : ", ") + a.gguf_arch;
  return make_error("general.architecture \"", gguf_arch,
                    "\" cannot be converted (supported: ", list, ")");
}

namespace arch_detail {

const std::vector<ScaleGroup>& llama_scale_groups() {
  // Scale groups (spec §3.2): input norm -> q,k,v (compare attention); v -> o (only for
  // multi-head attention); post-attention norm -> gate,up (compare MLP); up -> down.
  static const std::vector<ScaleGroup> g = {
      {ScaleGroup::Prev::AttnNorm, "", {"q_proj", "k_proj", "v_proj"}, ScaleGroup::Compare::Attention, false},
      {ScaleGroup::Prev::Linear, "v_proj", {"o_proj"}, ScaleGroup::Compare::Linear, true},
      {ScaleGroup::Prev::MlpNorm, "", {"gate_proj", "up_proj"}, ScaleGroup::Compare::Mlp, false},
      {ScaleGroup::Prev::Linear, "up_proj", {"down_proj"}, ScaleGroup::Compare::Linear, false},
  };
  return g;
}

void make_moe(Architecture& a, MoeNames names) {
  a.linears.resize(4);  // q, k, v, o; the MLP is the experts
  a.moe = true;
  a.moe_names = std::move(names);
  a.scale_groups = llama_scale_groups();
  a.scale_groups[2].experts = true;
  a.scale_groups[3].experts = true;
}

std::vector<LinearName> llama_linears() {
  return {
      {"q_proj", "self_attn.q_proj", "attn_q"},     {"k_proj", "self_attn.k_proj", "attn_k"},
      {"v_proj", "self_attn.v_proj", "attn_v"},     {"o_proj", "self_attn.o_proj", "attn_output"},
      {"gate_proj", "mlp.gate_proj", "ffn_gate"},   {"up_proj", "mlp.up_proj", "ffn_up"},
      {"down_proj", "mlp.down_proj", "ffn_down"},
  };
}

std::vector<NormName> llama_norms() {
  return {
      {NormSlot::Attn, "input_layernorm.weight", "attn_norm.weight"},
      {NormSlot::Mlp, "post_attention_layernorm.weight", "ffn_norm.weight"},
  };
}

Status parse_activation(const json& j, ModelConfig& c, const std::string& src, const char* key,
                        Activation def) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) {
    c.act = def;
    return Status::Ok();
  }
  const std::string v = it->is_string() ? it->get<std::string>() : it->dump();
  if (v == "silu" || v == "swish") c.act = Activation::Silu;
  else if (v == "gelu_pytorch_tanh" || v == "gelu_tanh") c.act = Activation::GeluTanh;
  else
    return make_error(src, ": field \"", key, "\" = \"", v,
                      "\" is not supported (supported: silu, gelu_pytorch_tanh)");
  return Status::Ok();
}

Status parse_layer_types(const json& j, ModelConfig& c, const std::string& src,
                         const std::vector<int>& fallback, int window) {
  auto it = j.find("layer_types");
  if (it == j.end() || it->is_null()) {
    c.layer_window = fallback;
    return Status::Ok();
  }
  if (!it->is_array() || (int)it->size() != c.n_layers)
    return make_error(src, ": field \"layer_types\" must be an array of ", c.n_layers,
                      " strings (one per layer), got ", it->dump());
  c.layer_window.assign(c.n_layers, 0);
  for (int l = 0; l < c.n_layers; ++l) {
    const json& e = (*it)[l];
    const std::string v = e.is_string() ? e.get<std::string>() : e.dump();
    if (v == "full_attention") continue;
    if (v == "sliding_attention") {
      if (window <= 0)
        return make_error(src, ": layer_types[", l,
                          "] is \"sliding_attention\" but \"sliding_window\" is not set");
      c.layer_window[l] = window;
      continue;
    }
    return make_error(src, ": layer_types[", l, "] = \"", v,
                      "\" is not supported (supported: full_attention, sliding_attention)");
  }
  return Status::Ok();
}

Expected<int> opt_int(const json& j, const char* key, const std::string& src, int def) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return def;
  if (!it->is_number_integer() || it->get<int64_t>() < 0 || it->get<int64_t>() > (1 << 30))
    return make_error(src, ": field \"", key, "\" must be a non-negative integer, got ", it->dump());
  return (int)it->get<int64_t>();
}

Status opt_softcap(const json& j, const char* key, const std::string& src, float def, float& out) {
  auto it = j.find(key);
  if (it == j.end()) {
    out = def;
    return Status::Ok();
  }
  if (it->is_null()) {
    out = 0.0f;
    return Status::Ok();
  }
  if (!it->is_number() || it->get<double>() <= 0)
    return make_error(src, ": field \"", key, "\" must be a positive number or null, got ",
                      it->dump());
  out = it->get<float>();
  return Status::Ok();
}

Status require_unset(const json& j, const char* key, const std::string& src, const char* what) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null() || (it->is_boolean() && !it->get<bool>())) return Status::Ok();
  return make_error(src, ": field \"", key, "\" = ", it->dump(), " (", what,
                    ") is not implemented for this architecture");
}

}  // namespace arch_detail
}  // namespace awq
