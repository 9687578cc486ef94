#include "model/config.h"

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>

#include "core/mmap_file.h"
#include "io/compressed_tensors.h"

namespace awq {

using json = nlohmann::json;

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

// rope_scaling / rope_parameters object -> RopeScaling; `field` names it in errors. `top` is
// the whole config: the pretraining length of llama3/yarn is its top-level
// original_max_position_embeddings when present (Phi-3 keeps it there), else the object's, else
// max_position_embeddings (Transformers' standardize_rope_params).
Status parse_scaling(const json& o, const json& top, const std::string& src,
                     const std::string& field, RopeScaling& rs) {
  std::string type = o.value("rope_type", o.value("type", std::string()));
  Reader r{o, src}, rt{top, src};
  rs = RopeScaling{};
  auto original = [&]() -> Status {
    AWQ_ASSIGN(const int max_pos, rt.get_int("max_position_embeddings", false, 2048));
    AWQ_ASSIGN(const int in_obj, r.get_int("original_max_position_embeddings", false, max_pos));
    AWQ_ASSIGN(rs.original_max_position,
               rt.get_int("original_max_position_embeddings", false, in_obj));
    if (rs.original_max_position <= 0)
      return make_error(src, ": ", field, ".original_max_position_embeddings must be positive");
    return Status::Ok();
  };
  if (type == "llama3") {
    rs.kind = RopeScaling::Kind::Llama3;
    AWQ_ASSIGN(rs.factor, r.get_float("factor", 8.0f));
    AWQ_ASSIGN(rs.low_freq_factor, r.get_float("low_freq_factor", 1.0f));
    AWQ_ASSIGN(rs.high_freq_factor, r.get_float("high_freq_factor", 4.0f));
    AWQ_TRY(original());
  } else if (type == "linear") {
    rs.kind = RopeScaling::Kind::Linear;
    AWQ_ASSIGN(rs.factor, r.get_float("factor", 1.0f));
  } else if (type == "yarn") {
    rs.kind = RopeScaling::Kind::Yarn;
    AWQ_TRY(original());
    AWQ_ASSIGN(const int max_pos, rt.get_int("max_position_embeddings", false, 2048));
    AWQ_ASSIGN(rs.factor, r.get_float("factor", float(max_pos) / float(rs.original_max_position)));
    if (!(rs.factor > 0))
      return make_error(src, ": ", field, ".factor must be positive, got ", rs.factor);
    // `or 32` / `or 1` in the reference: null and 0 both mean the default
    AWQ_ASSIGN(rs.beta_fast, r.get_float("beta_fast", 32.0f));
    AWQ_ASSIGN(rs.beta_slow, r.get_float("beta_slow", 1.0f));
    if (rs.beta_fast == 0.0f) rs.beta_fast = 32.0f;
    if (rs.beta_slow == 0.0f) rs.beta_slow = 1.0f;
    AWQ_ASSIGN(rs.truncate, r.get_bool("truncate", true));
    auto mscale_of = [](double scale, double m) {
      return scale <= 1 ? 1.0 : 0.1 * m * std::log(scale) + 1.0;
    };
    if (auto it = o.find("attention_factor"); it != o.end() && !it->is_null()) {
      AWQ_ASSIGN(rs.attention_factor, r.get_float("attention_factor", 1.0f));
    } else {
      AWQ_ASSIGN(const float ms, r.get_float("mscale", 0.0f));
      AWQ_ASSIGN(const float msa, r.get_float("mscale_all_dim", 0.0f));
      rs.attention_factor = ms != 0.0f && msa != 0.0f
                                ? float(mscale_of(rs.factor, ms) / mscale_of(rs.factor, msa))
                                : float(mscale_of(rs.factor, 1.0));
    }
  } else if (type != "default" && !type.empty()) {
    return make_error(src, ": ", field, ".rope_type \"", type,
                      "\" is not supported (supported: llama3, yarn, linear, default)");
  }
  return Status::Ok();
}

}  // namespace

Status parse_rope_fields(const json& j, const std::string& src, float def_theta, float& theta,
                         RopeScaling& scaling, const char* where) {
  const std::string pre = where && *where ? std::string(where) + "." : std::string();
  Reader r{j, src};
  scaling = RopeScaling{};
  if (auto it = j.find("rope_parameters"); it != j.end() && !it->is_null()) {
    // Transformers 5: {"rope_theta": ..., "rope_type": ..., "factor": ...}
    if (!it->is_object())
      return make_error(src, ": field \"", pre, "rope_parameters\" must be an object, got ",
                        it->dump());
    if (it->contains("full_attention") || it->contains("sliding_attention"))
      return make_error(src, ": field \"", pre,
                        "rope_parameters\" is given per layer type (full_attention/"
                        "sliding_attention), which this architecture does not have");
    Reader rp{*it, src};
    AWQ_ASSIGN(const float top, r.get_float("rope_theta", def_theta));
    AWQ_ASSIGN(theta, rp.get_float("rope_theta", top));
    return parse_scaling(*it, j, src, pre + "rope_parameters", scaling);
  }
  AWQ_ASSIGN(theta, r.get_float("rope_theta", def_theta));
  if (auto it = j.find("rope_scaling"); it != j.end() && it->is_object())
    return parse_scaling(*it, j, src, pre + "rope_scaling", scaling);
  return Status::Ok();
}

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
  {
    auto rp = j.find("rope_parameters");
    const bool per_type = rp != j.end() && rp->is_object() &&
                          (rp->contains("full_attention") || rp->contains("sliding_attention"));
    if (!(per_type && c.arch->rope_per_layer_type))  // else the family reads it
      AWQ_TRY(parse_rope_fields(j, src, 10000.0f, c.rope_theta, c.rope_scaling, ""));
  }
  c.layer_window.assign(c.n_layers, 0);
  if (c.arch->embed_scale_sqrt_hidden) c.embed_scale = std::sqrt((float)c.hidden);
  if (c.arch->parse_config) AWQ_TRY(c.arch->parse_config(j, c, src));
  if ((int)c.layer_window.size() != c.n_layers)
    return make_error(src, ": internal: ", c.layer_window.size(), " layer windows for ",
                      c.n_layers, " layers");
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
  if (dir.size() > 5 && dir.ends_with(".gguf"))
    return make_error(dir, ": is a GGUF file; this command needs a Hugging Face model directory "
                           "(convert it first: awq convert ", dir, " OUT_DIR)");
  std::string path = dir;
  if (path.size() < 5 || path.substr(path.size() - 5) != ".json") path += "/config.json";
  AWQ_ASSIGN(std::string text, read_text_file(path));
  return parse_model_config(text, path);
}

}  // namespace awq
