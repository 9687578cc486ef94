#include "model/config.h"

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>

#include "core/mmap_file.h"
#include "io/compressed_tensors.h"

namespace awq {

using json = nlohmann::json;

const std::vector<Architecture>& supported_architectures() {
  // Scale groups (spec §3.2): input norm -> q,k,v (compare attention); v -> o (only for
  // multi-head attention); post-attention norm -> gate,up (compare MLP); up -> down.
  static const std::vector<ScaleGroup> llama_groups = {
      {ScaleGroup::Prev::AttnNorm, "", {"q_proj", "k_proj", "v_proj"}, ScaleGroup::Compare::Attention, false},
      {ScaleGroup::Prev::Linear, "v_proj", {"o_proj"}, ScaleGroup::Compare::Linear, true},
      {ScaleGroup::Prev::MlpNorm, "", {"gate_proj", "up_proj"}, ScaleGroup::Compare::Mlp, false},
      {ScaleGroup::Prev::Linear, "up_proj", {"down_proj"}, ScaleGroup::Compare::Linear, false},
  };
  static const std::vector<Architecture> archs = {
      {"LlamaForCausalLM", false, llama_groups},
      {"MistralForCausalLM", false, llama_groups},
      {"Qwen2ForCausalLM", true, llama_groups},
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

const std::vector<std::string>& block_linear_names() {
  static const std::vector<std::string> names = {"q_proj",    "k_proj",  "v_proj",   "o_proj",
                                                 "gate_proj", "up_proj", "down_proj"};
  return names;
}

std::string linear_prefix(int layer, const std::string& short_name) {
  const bool attn = short_name == "q_proj" || short_name == "k_proj" || short_name == "v_proj" ||
                    short_name == "o_proj";
  return "model.layers." + std::to_string(layer) + (attn ? ".self_attn." : ".mlp.") + short_name;
}

namespace {

// Typed field readers that name the file and field on error.
struct Reader {
  const json& j;
  const std::string& src;
  Expected<int> get_int(const char* key, bool required, int def = 0) const {
    auto it = j.find(key);
    if (it == j.end() || it->is_null()) {
      if (required) return make_error(src, ": missing required field \"", key, "\"");
      return def;
    }
    if (!it->is_number_integer() || it->get<int64_t>() < 0 || it->get<int64_t>() > (1 << 30))
      return make_error(src, ": field \"", key, "\" must be a non-negative integer, got ", it->dump());
    return (int)it->get<int64_t>();
  }
  Expected<float> get_float(const char* key, float def) const {
    auto it = j.find(key);
    if (it == j.end() || it->is_null()) return def;
    if (!it->is_number()) return make_error(src, ": field \"", key, "\" must be a number, got ", it->dump());
    return it->get<float>();
  }
  Expected<bool> get_bool(const char* key, bool def) const {
    auto it = j.find(key);
    if (it == j.end() || it->is_null()) return def;
    if (!it->is_boolean()) return make_error(src, ": field \"", key, "\" must be true/false, got ", it->dump());
    return it->get<bool>();
  }
};

}  // namespace

Expected<ModelConfig> parse_model_config(const std::string& text, const std::string& src) {
  json j;
  try {
    j = json::parse(text);
  } catch (const json::exception& e) {
    return make_error(src, ": malformed JSON: ", e.what());
  }
  if (!j.is_object()) return make_error(src, ": expected a JSON object at top level");
  ModelConfig c;
  c.json_text = text;
  std::string arch_name;
  if (auto it = j.find("architectures"); it != j.end() && it->is_array() && !it->empty() &&
                                         (*it)[0].is_string()) {
    arch_name = (*it)[0].get<std::string>();
  } else {
    return make_error(src, ": missing \"architectures\" (expected e.g. [\"LlamaForCausalLM\"])");
  }
  auto arch = find_architecture(arch_name);
  if (!arch) return make_error(src, ": ", arch.error().message);
  c.arch = *arch;
  if (auto it = j.find("model_type"); it != j.end() && it->is_string()) c.model_type = *it;
  Reader r{j, src};
  AWQ_ASSIGN(c.hidden, r.get_int("hidden_size", true));
  AWQ_ASSIGN(c.intermediate, r.get_int("intermediate_size", true));
  AWQ_ASSIGN(c.n_layers, r.get_int("num_hidden_layers", true));
  AWQ_ASSIGN(c.n_heads, r.get_int("num_attention_heads", true));
  AWQ_ASSIGN(c.n_kv_heads, r.get_int("num_key_value_heads", false, c.n_heads));
  AWQ_ASSIGN(c.vocab, r.get_int("vocab_size", true));
  AWQ_ASSIGN(c.max_position, r.get_int("max_position_embeddings", false, 2048));
  AWQ_ASSIGN(c.rms_eps, r.get_float("rms_norm_eps", 1e-6f));
  AWQ_ASSIGN(c.rope_theta, r.get_float("rope_theta", 10000.0f));
  AWQ_ASSIGN(c.tie_embeddings, r.get_bool("tie_word_embeddings", false));
  if (c.hidden == 0 || c.n_heads == 0 || c.n_layers == 0 || c.vocab == 0 || c.intermediate == 0)
    return make_error(src, ": hidden_size, intermediate_size, num_hidden_layers, "
                           "num_attention_heads and vocab_size must be positive");
  AWQ_ASSIGN(c.head_dim, r.get_int("head_dim", false, c.hidden / c.n_heads));
  if (c.head_dim == 0 || c.head_dim % 2 != 0)
    return make_error(src, ": head_dim must be a positive even number, got ", c.head_dim);
  if (c.n_kv_heads == 0 || c.n_heads % c.n_kv_heads != 0)
    return make_error(src, ": num_attention_heads (", c.n_heads,
                      ") must be a multiple of num_key_value_heads (", c.n_kv_heads, ")");
  if (auto it = j.find("bos_token_id"); it != j.end() && it->is_number_integer()) c.bos_id = *it;
  if (auto it = j.find("eos_token_id"); it != j.end()) {
    if (it->is_number_integer()) c.eos_ids.push_back(*it);
    else if (it->is_array())
      for (auto& e : *it)
        if (e.is_number_integer()) c.eos_ids.push_back(e);
  }
  if (auto it = j.find("rope_scaling"); it != j.end() && it->is_object()) {
    std::string type = it->value("rope_type", it->value("type", std::string()));
    Reader rs{*it, src};
    if (type == "llama3") {
      c.rope_scaling.kind = RopeScaling::Kind::Llama3;
      AWQ_ASSIGN(c.rope_scaling.factor, rs.get_float("factor", 8.0f));
      AWQ_ASSIGN(c.rope_scaling.low_freq_factor, rs.get_float("low_freq_factor", 1.0f));
      AWQ_ASSIGN(c.rope_scaling.high_freq_factor, rs.get_float("high_freq_factor", 4.0f));
      AWQ_ASSIGN(c.rope_scaling.original_max_position,
                 rs.get_int("original_max_position_embeddings", false, 8192));
    } else if (type == "linear") {
      c.rope_scaling.kind = RopeScaling::Kind::Linear;
      AWQ_ASSIGN(c.rope_scaling.factor, rs.get_float("factor", 1.0f));
    } else if (type != "default" && !type.empty()) {
      return make_error(src, ": rope_scaling type \"", type,
                        "\" is not supported (supported: llama3, linear, default)");
    }
  }
  if (auto it = j.find("quantization_config"); it != j.end() && it->is_object()) {
    auto& q = *it;
    std::string method = q.value("quant_method", std::string());
    if (method == "compressed-tensors") {
      AWQ_ASSIGN(CtWeightScheme s, parse_ct_quantization_config(q, src));
      c.quant.present = true;
      c.quant.method = QuantizationInfo::Method::CompressedTensors;
      c.quant.bits = s.num_bits;
      c.quant.group_size = s.group_size;
      c.quant.zero_point = !s.symmetric;
      return c;
    }
    if (method != "awq")
      return make_error(src, ": quantization_config.quant_method \"", method,
                        "\" is not supported (supported: awq, compressed-tensors)");
    c.quant.present = true;
    Reader rq{q, src};
    AWQ_ASSIGN(c.quant.bits, rq.get_int(q.contains("bits") ? "bits" : "w_bit", false, 4));
    auto gs = q.find(q.contains("group_size") ? "group_size" : "q_group_size");
    if (gs != q.end() && gs->is_number_integer()) c.quant.group_size = (int)gs->get<int64_t>();
    AWQ_ASSIGN(c.quant.zero_point, rq.get_bool("zero_point", true));
    c.quant.version = q.value("version", std::string("gemm"));
    std::transform(c.quant.version.begin(), c.quant.version.end(), c.quant.version.begin(), ::tolower);
    if (c.quant.version != "gemm")
      return make_error(src, ": quantization_config.version \"", c.quant.version,
                        "\" is not supported (supported: gemm)");
    if (auto m = q.find("modules_to_not_convert"); m != q.end() && m->is_array())
      for (auto& e : *m)
        if (e.is_string()) c.quant.modules_to_not_convert.push_back(e);
  }
  return c;
}

Expected<ModelConfig> load_model_config(const std::string& dir) {
  std::string path = dir;
  if (path.size() < 5 || path.substr(path.size() - 5) != ".json") path += "/config.json";
  AWQ_ASSIGN(std::string text, read_text_file(path));
  return parse_model_config(text, path);
}

}  // namespace awq
