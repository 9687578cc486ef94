// Phi-3 / Phi-4-mini (Phi3ForCausalLM): the Llama block with q/k/v stored as one fused
// self_attn.qkv_proj (rows q, then k, then v) and gate/up as one mlp.gate_up_proj (rows gate,
// then up); optional partial rotary ("partial_rotary_factor": RoPE on the first
// head_dim * factor dims of each head, the rest passed through); sliding window on every layer
// when "sliding_window" is set (Phi-3-mini-4k: 2047).
//
// AWQ scale groups (AutoAWQ awq/models/phi3.py): input_layernorm -> qkv_proj (one scale vector
// over the fused input, compare attention); qkv_proj's v rows -> o_proj (multi-head only, as for
// Llama: the rows a v -> o scale divides are the last rows of qkv_proj, which are v);
// post_attention_layernorm -> gate_up_proj (compare MLP); gate_up_proj's up half (its last
// rows) -> down_proj. The parts are held as separate linears (model/arch.h FusedLinear), so these
// are Llama's groups; the writer stores the fused modules.
//
// Not implemented (error naming the field): rope scaling "longrope" / "su" (Phi-3-*-128k,
// Phi-4-mini), read by the shared rope parser.
#include <cmath>
#include <nlohmann/json.hpp>

#include "model/arch.h"
#include "model/config.h"

namespace awq {
namespace {

using json = nlohmann::json;

Status parse_phi3(const json& j, ModelConfig& c, const std::string& src) {
  AWQ_TRY(arch_detail::parse_activation(j, c, src, "hidden_act", Activation::Silu));
  AWQ_TRY(arch_detail::require_unset(j, "attention_bias", src, "q/k/v/o biases"));
  // partial_rotary_factor: top level (Transformers 4) or inside rope_parameters (5).
  const json* f = nullptr;
  const char* where = "partial_rotary_factor";
  if (auto it = j.find("partial_rotary_factor"); it != j.end() && !it->is_null()) f = &*it;
  if (auto rp = j.find("rope_parameters"); rp != j.end() && rp->is_object())
    if (auto it = rp->find("partial_rotary_factor"); it != rp->end() && !it->is_null()) {
      f = &*it;
      where = "rope_parameters.partial_rotary_factor";
    }
  if (f) {
    if (!f->is_number() || f->get<double>() <= 0 || f->get<double>() > 1)
      return make_error(src, ": field \"", where, "\" must be a number in (0, 1], got ", f->dump());
    const int rot = (int)((double)c.head_dim * f->get<double>());  // int() as Transformers
    if (rot <= 0 || rot % 2 != 0)
      return make_error(src, ": field \"", where, "\" = ", f->dump(), " gives ", rot,
                        " rotary dims of head_dim ", c.head_dim, " (must be even and positive)");
    c.rotary_dim = rot == c.head_dim ? 0 : rot;
  }
  AWQ_ASSIGN(const int w, arch_detail::opt_int(j, "sliding_window", src, 0));
  return arch_detail::parse_layer_types(j, c, src, std::vector<int>(c.n_layers, w), w);
}

}  // namespace

const Architecture& phi3_architecture() {
  static const Architecture a = [] {
    Architecture a = llama_architecture();
    a.name = "Phi3ForCausalLM";
    a.model_type = "phi3";
    a.gguf_arch = "phi3";  // fused attn_qkv and ffn_up (= gate|up), as the HF checkpoint
    a.gguf_permuted_qk = false;
    a.fused = {
        {"self_attn.qkv_proj", "attn_qkv", {"q_proj", "k_proj", "v_proj"}},
        {"mlp.gate_up_proj", "ffn_up", {"gate_proj", "up_proj"}},
    };
    a.parse_config = parse_phi3;
    return a;
  }();
  return a;
}

}  // namespace awq
