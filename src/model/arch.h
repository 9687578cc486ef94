// Architectures as data: one description per model family (src/model/arch_<family>.cpp), all
// listed in one registry table (arch_registry.cpp). Every consumer (weights loader, fp32
// forward, KV engine, quantizer, checkpoint writer, GGUF converter) reads this description
// instead of assuming the Llama layout. docs/ARCHITECTURE.md shows how to add a family.
#pragma once
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

#include "core/status.h"

namespace awq {

struct ModelConfig;

// One AWQ scale group: the op whose output feeds `linears` (a norm or a linear),
// the linears that share one scale vector, and the module whose output the search compares.
struct ScaleGroup {
  enum class Prev { AttnNorm, MlpNorm, Linear } prev_kind;
  std::string prev_linear;            // when prev_kind == Linear: e.g. "v_proj"
  std::vector<std::string> linears;   // e.g. {"q_proj", "k_proj", "v_proj"}
  enum class Compare { Attention, Mlp, Linear } compare;
  bool requires_same_shape = false;   // v -> o only for multi-head attention
  // MoE: `linears` name expert linears. MlpNorm -> {gate_proj, up_proj}: one scale vector over
  // every expert's gate/up (compare: the MoE block); up_proj -> down_proj: one group per expert,
  // on the calibration tokens routed to it.
  bool experts = false;
};

// How a norm weight is applied. Rms: y = w * x / rms(x). RmsPlusOne (Gemma): the file stores w
// and y = (1 + w) * x / rms(x); the loader holds the effective multiplier 1 + w in memory (so the
// forward and the AWQ folding treat both kinds alike) and the writer stores it back minus 1.
enum class NormKind { Rms, RmsPlusOne };
enum class Activation { Silu, GeluTanh };  // of the gate projection (gate/up MLP)

// Where a block norm sits in the block recipe.
enum class NormSlot {
  Attn,      // before attention (input_layernorm)
  PostAttn,  // on the attention output, before the residual add (Gemma 2/3)
  Mlp,       // before the MLP
  PostMlp,   // on the MLP output, before the residual add (Gemma 2/3)
  Q,         // per head on q, before RoPE, width head_dim (Qwen 3, Gemma 3)
  K,         // per head on k, likewise
};

struct NormName {
  NormSlot slot;
  std::string hf;    // under "model.layers.N.": "input_layernorm.weight"
  std::string gguf;  // under "blk.N.": "attn_norm.weight"
};

struct LinearName {
  std::string name;  // short name used by the scale groups: "q_proj"
  std::string hf;    // module under "model.layers.N.": "self_attn.q_proj"
  std::string gguf;  // tensor stem under "blk.N.": "attn_q"
};

// Linears stored as one module in the checkpoint (Phi-3's qkv_proj, gate_up_proj): the fused
// weight is the parts' rows one after another, in `parts` order. The loader splits it into the
// parts (held and run as separate linears, so the forward, the engine and the AWQ search see
// the Llama layout) and the checkpoint writer joins the parts' quantized rows again under the
// fused name (vLLM loads qkv_proj / gate_up_proj fused). Quantization is per output row and
// input group, so quantizing the parts separately gives exactly the fused module's codes; AWQ
// scale groups over all parts share one scale vector (the fused input's).
struct FusedLinear {
  std::string hf;                  // module under "model.layers.N.": "self_attn.qkv_proj"
  std::string gguf;                // tensor stem under "blk.N." ("attn_qkv"), empty if none
  std::vector<std::string> parts;  // short names in row order: {"q_proj", "k_proj", "v_proj"}
};

// Mixture-of-experts MLP (Mixtral, Qwen 3-MoE): a router linear (hidden -> n_experts; kept
// fp16, never quantized) picks top-k experts per token (softmax, then top-k, then renormalised
// when the family/config says so); each expert is a gated MLP (gate, up, down) of
// moe_intermediate width; the token's MLP output is the routing-weighted sum of its experts'.
struct MoeNames {
  std::string router;       // under "model.layers.N.": "block_sparse_moe.gate"
  std::string experts;      // expert e's modules are under experts + "<e>.": "block_sparse_moe.experts."
  std::string gate, up, down;  // module names in an expert: "w1", "w3", "w2"
  // A shared expert every token goes through, scaled by sigmoid(shared_gate(x)) (Qwen 2-MoE):
  // its gate/up/down modules under "model.layers.N." + shared ("mlp.shared_expert."), and the
  // hidden -> 1 gate linear ("mlp.shared_expert_gate"). Empty: none.
  std::string shared, shared_gate;
  // llama.cpp's tensors under "blk.N." (the same for every MoE family it writes): the router
  // and the experts stacked into one 3-D tensor per projection, [n_experts, rows, cols].
  std::string gguf_router = "ffn_gate_inp";
  std::string gguf_gate = "ffn_gate_exps", gguf_up = "ffn_up_exps", gguf_down = "ffn_down_exps";
  // the shared expert's (2-D) and its gate's tensors
  std::string gguf_shared_gate = "ffn_gate_shexp", gguf_shared_up = "ffn_up_shexp",
              gguf_shared_down = "ffn_down_shexp", gguf_shared_inp = "ffn_gate_inp_shexp";
};

struct Architecture {
  std::string name;        // HF "architectures"[0]: "LlamaForCausalLM"
  std::string model_type;  // HF "model_type": "llama"
  std::string gguf_arch;   // GGUF general.architecture: "llama" (empty: no GGUF input)
  bool qkv_bias = false;   // q/k/v carry a bias (Qwen 2)
  NormKind norm = NormKind::Rms;
  bool embed_scale_sqrt_hidden = false;  // embeddings multiplied by sqrt(hidden) (Gemma)
  bool gguf_permuted_qk = false;         // llama.cpp permutes q/k rows for RoPE (llama only)
  bool gguf_norm_plus_one = false;       // llama.cpp stores Gemma norms as 1 + w
  bool rope_per_layer_type = false;      // rope_parameters may be {full_attention, sliding_attention}
  std::vector<NormName> block_norms;     // checkpoint order
  std::vector<LinearName> linears;       // execution order
  std::vector<FusedLinear> fused;       // linears stored fused (Phi-3); parts are in `linears`
  bool moe = false;                      // the MLP of every block is a mixture of experts
  MoeNames moe_names;                    // when moe; `linears` then holds only q/k/v/o
  std::vector<ScaleGroup> scale_groups;
  std::vector<std::string> never_quantized;  // module names left fp16 by default ("lm_head")
  // Family-specific config.json fields (activation, windows, rope variants, ...): read them into
  // cfg, or return an error naming the field and value for a feature not implemented.
  Status (*parse_config)(const nlohmann::json& j, ModelConfig& cfg, const std::string& src) =
      nullptr;

  const LinearName* find_linear(const std::string& short_name) const;
  bool has_norm(NormSlot s) const;
  // The fused module a linear is stored in (nullptr: stored alone); *index = its part number.
  const FusedLinear* fused_of(const std::string& short_name, int* index = nullptr) const;
  // "model.layers.3.self_attn.q_proj"; for a part of a fused module, the fused module's prefix
  // ("model.layers.3.self_attn.qkv_proj"), which is what the checkpoint holds.
  std::string linear_prefix(int layer, const std::string& short_name) const;
  // MoE: "model.layers.3.block_sparse_moe.experts.5.w1" for ("gate_proj", expert 5); the router:
  // "model.layers.3.block_sparse_moe.gate".
  std::string expert_prefix(int layer, int expert, const std::string& short_name) const;
  std::string router_prefix(int layer) const;
  // The shared expert's modules (Qwen 2-MoE): "model.layers.3.mlp.shared_expert.up_proj", and its
  // gate "model.layers.3.mlp.shared_expert_gate".
  bool has_shared_expert() const { return moe && !moe_names.shared.empty(); }
  std::string shared_prefix(int layer, const std::string& short_name) const;
  std::string shared_gate_prefix(int layer) const;
};

// The registry (arch_registry.cpp): every supported family, Llama first.
const std::vector<Architecture>& supported_architectures();
Expected<const Architecture*> find_architecture(const std::string& name);
// By GGUF general.architecture; an error lists the GGUF architectures we read.
Expected<const Architecture*> find_gguf_architecture(const std::string& gguf_arch);

// Family descriptions (one file each).
const Architecture& llama_architecture();
const Architecture& mistral_architecture();
const Architecture& qwen2_architecture();
const Architecture& qwen3_architecture();
const Architecture& gemma3_architecture();
const Architecture& phi3_architecture();
const Architecture& gemma2_architecture();
const Architecture& mixtral_architecture();
const Architecture& qwen3_moe_architecture();
const Architecture& qwen2_moe_architecture();

// Shared pieces the family files use.
namespace arch_detail {
const std::vector<ScaleGroup>& llama_scale_groups();
std::vector<LinearName> llama_linears();
std::vector<NormName> llama_norms();
// The MoE form of a dense Llama-layout description: `linears` keeps q/k/v/o only, the MLP is
// `names`' router + experts, and the MLP-side scale groups (post-attention norm -> gate,up and
// up -> down) span the experts.
void make_moe(Architecture& a, MoeNames names);
// hidden_act (or `key`) must be one of the values mapped; error names field and value.
Status parse_activation(const nlohmann::json& j, ModelConfig& c, const std::string& src,
                        const char* key, Activation def);
// Sliding window of every layer from "layer_types" when present, else `fallback` (0 = full).
Status parse_layer_types(const nlohmann::json& j, ModelConfig& c, const std::string& src,
                         const std::vector<int>& fallback, int window);
// Optional integer field (null or absent -> def).
Expected<int> opt_int(const nlohmann::json& j, const char* key, const std::string& src, int def);
// Optional positive number (absent -> def; null -> 0, "off"): soft-capping values.
Status opt_softcap(const nlohmann::json& j, const char* key, const std::string& src, float def,
                   float& out);
// A field that must be absent, null or false (a feature we do not implement).
Status require_unset(const nlohmann::json& j, const char* key, const std::string& src,
                     const char* what);
}  // namespace arch_detail

}  // namespace awq
