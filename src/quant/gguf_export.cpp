#include "quant/gguf_export.h"

#include <algorithm>
#include <atomic>
#include <cctype>
#include <filesystem>
#include <map>
#include <optional>
#include <nlohmann/json.hpp>
#include <regex>

#include "core/mmap_file.h"
#include "quant/ggml_quant.h"

namespace awq {
namespace fs = std::filesystem;

namespace {

// llama.cpp's q/k row order for RoPE ("llama" only): within a head, GGUF row 2*i + j holds HF
// row j * (head_dim / 2) + i (the inverse of gguf_convert's unpermute_qk_rows).
std::vector<float> permute_qk_rows(const float* w, int64_t rows, int64_t cols, int64_t n_heads) {
  std::vector<float> out((size_t)(rows * cols));
  const int64_t hd = rows / n_heads, half = hd / 2;
  for (int64_t h = 0; h < n_heads; ++h)
    for (int64_t i = 0; i < half; ++i)
      for (int64_t j = 0; j < 2; ++j)
        std::copy_n(w + (h * hd + j * half + i) * cols, cols,
                    out.data() + (h * hd + 2 * i + j) * cols);
  return out;
}

// tokenizer.json's pre_tokenizer -> llama.cpp's tokenizer.ggml.pre name with the same split
// (llama-vocab.cpp's regexes); empty when none matches.
std::string pre_name(const nlohmann::json& pre) {
  auto byte_level = [](const nlohmann::json& p, bool regex) {
    return p.is_object() && p.value("type", "") == "ByteLevel" &&
           !p.value("add_prefix_space", false) && p.value("use_regex", true) == regex;
  };
  if (byte_level(pre, true)) return "gpt-2";
  if (!pre.is_object() || pre.value("type", "") != "Sequence") return "";
  const auto& ps = pre.value("pretokenizers", nlohmann::json::array());
  if (ps.size() != 2) return "";
  if (ps[0].value("type", "") == "Digits" && ps[0].value("individual_digits", false) &&
      byte_level(ps[1], true))
    return "smollm";
  if (ps[0].value("type", "") != "Split" || !byte_level(ps[1], false)) return "";
  const std::string rx = ps[0].contains("pattern") && ps[0]["pattern"].is_object()
                             ? ps[0]["pattern"].value("Regex", "")
                             : "";
  static const std::string llama3 =
      R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
  static const std::string qwen2 =
      R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
  if (rx == llama3) return "llama-bpe";
  if (rx == qwen2) return "qwen2";
  return "";
}

}  // namespace

namespace {
struct TargetName {
  const char* name;
  GgufTarget t;
  uint32_t ftype;  // llama_ftype
};
constexpr TargetName kTargets[] = {
    {"f32", {GGMLType::F32, 0}, 0},       {"f16", {GGMLType::F16, 0}, 1},
    {"q4_0", {GGMLType::Q4_0, 0}, 2},     {"q4_1", {GGMLType::Q4_1, 0}, 3},
    {"q8_0", {GGMLType::Q8_0, 0}, 7},     {"q5_0", {GGMLType::Q5_0, 0}, 8},
    {"q5_1", {GGMLType::Q5_1, 0}, 9},     {"q4_k_s", {GGMLType::Q4_K, 'S'}, 14},
    {"q4_k_m", {GGMLType::Q4_K, 'M'}, 15}, {"q5_k_s", {GGMLType::Q5_K, 'S'}, 16},
    {"q5_k_m", {GGMLType::Q5_K, 'M'}, 17}, {"q6_k", {GGMLType::Q6_K, 0}, 18},
};
}  // namespace

std::string GgufTarget::name() const {
  for (const TargetName& n : kTargets)
    if (n.t == *this) {
      std::string s = n.name;
      for (auto& c : s) c = (char)std::toupper((unsigned char)c);
      return s;
    }
  return ggml_type_name((uint32_t)base);
}

uint32_t GgufTarget::file_type() const {
  for (const TargetName& n : kTargets)
    if (n.t == *this) return n.ftype;
  return 7;
}

Expected<GgufTarget> parse_gguf_type(const std::string& name) {
  std::string n = name;
  for (auto& c : n) c = (char)std::tolower((unsigned char)c);
  if (n == "q4_k" || n == "q5_k") n += "_m";  // llama-quantize's aliases
  for (const TargetName& t : kTargets)
    if (n == t.name) return t.t;
  return make_error("GGUF type \"", name, "\" is not written (expected q4_0, q4_1, q5_0, q5_1, "
                    "q8_0, q4_k_s, q4_k_m, q5_k_s, q5_k_m, q6_k, f16 or f32)");
}

GGMLType gguf_tensor_type(const GgufTarget& t, const std::string& name, int n_layers,
                          int64_t ncols, bool tied, bool has_imatrix, std::string* note) {
  if (!ggml_is_block_type(t.base)) return t.base;
  const bool q4km = t.base == GGMLType::Q4_K && t.mix == 'M';
  const bool q5km = t.base == GGMLType::Q5_K && t.mix == 'M';
  const bool q4ks = t.base == GGMLType::Q4_K && t.mix == 'S';
  // llama.cpp's use_more_bits: the first and last eighth, and every third layer between
  auto more_bits = [n_layers](int i) {
    return i < n_layers / 8 || i >= 7 * n_layers / 8 || (i - n_layers / 8) % 3 == 2;
  };
  int layer = -1;
  std::string role;
  if (name.starts_with("blk.")) {
    const size_t dot = name.find('.', 4);
    layer = std::atoi(name.c_str() + 4);
    role = name.substr(dot + 1);
  }
  GGMLType ty = t.base;
  if (name == "output.weight" || (tied && name == "token_embd.weight")) {
    if (ncols % ggml_block_elems(t.base) != 0) ty = GGMLType::Q8_0;
    else if (t.base != GGMLType::Q8_0) ty = GGMLType::Q6_K;
  } else if (role == "attn_v.weight") {
    if ((q4km || q5km) && more_bits(layer)) ty = GGMLType::Q6_K;
    else if (q4ks && layer < 4) ty = GGMLType::Q5_K;
  } else if (role == "ffn_down.weight") {
    if (q4km && more_bits(layer)) ty = GGMLType::Q6_K;
    else if (q5km && more_bits(layer)) ty = GGMLType::Q6_K;
    else if (q4ks && layer < n_layers / 8) ty = GGMLType::Q5_K;
    else if ((t.base == GGMLType::Q4_0 || t.base == GGMLType::Q5_0) && has_imatrix &&
             layer < n_layers / 8)
      ty = t.base == GGMLType::Q4_0 ? GGMLType::Q4_1 : GGMLType::Q5_1;
  }
  const int be = ggml_block_elems(ty);
  if (ncols % be != 0) {
    const GGMLType want = ty;
    ty = ty == GGMLType::Q4_K ? GGMLType::Q5_0
       : ty == GGMLType::Q5_K ? GGMLType::Q5_1
       : ty == GGMLType::Q6_K ? GGMLType::Q8_0 : ty;
    if (ncols % ggml_block_elems(ty) != 0) ty = GGMLType::F16;
    if (note)
      *note = name + ": rows of " + std::to_string(ncols) + " do not fit " +
              ggml_type_name((uint32_t)want) + "'s blocks of " + std::to_string(be) + ", " +
              ggml_type_name((uint32_t)ty) + " (llama.cpp's fallback)";
  }
  return ty;
}

std::string gguf_linear_name(const ModelConfig& cfg, const std::string& hf) {
  static const std::regex blk(R"(model\.layers\.(\d+)\.(.+))");
  std::smatch m;
  if (!std::regex_match(hf, m, blk)) return "";
  for (const LinearName& l : cfg.arch->linears)
    if (m[2].str() == l.hf) return "blk." + m[1].str() + "." + l.gguf + ".weight";
  return "";
}

bool gguf_search_config(const GgufTarget& t, int* w_bit, int* group_size, bool* zero_point) {
  *group_size = 32;
  switch (t.base) {
    case GGMLType::Q4_0: *w_bit = 4, *zero_point = false; return true;
    case GGMLType::Q4_1: case GGMLType::Q4_K: *w_bit = 4, *zero_point = true; return true;
    case GGMLType::Q5_0: *w_bit = 5, *zero_point = false; return true;
    case GGMLType::Q5_1: case GGMLType::Q5_K: *w_bit = 5, *zero_point = true; return true;
    case GGMLType::Q6_K: *w_bit = 6, *zero_point = false; return true;
    case GGMLType::Q8_0: *w_bit = 8, *zero_point = false; return true;
    default: return false;
  }
}

Expected<GgufModelWriter> GgufModelWriter::create(const std::string& out_path,
                                                  const ModelConfig& cfg,
                                                  const GgufTarget& target, bool overwrite) {
  const Architecture& a = *cfg.arch;
  const std::string src = "--format gguf: " + a.name;
  if (a.gguf_arch.empty() || a.gguf_norm_plus_one)
    return make_error(src, " cannot be written as GGUF yet (supported: LlamaForCausalLM, "
                           "Qwen2ForCausalLM, Qwen3ForCausalLM)");
  if (a.moe || !a.fused.empty())
    return make_error(src, ": mixture-of-experts and fused-projection models cannot be written as "
                           "GGUF yet");
  if (cfg.rope_scaling.kind != RopeScaling::Kind::None)
    return make_error(src, ": config.json rope_scaling is set; GGUF export writes unscaled RoPE "
                           "only");
  for (int l = 0; l < cfg.n_layers; ++l)
    if (cfg.window_of(l) > 0)
      return make_error(src, ": config.json sliding_window (layer ", l,
                        ") is set; GGUF export writes full attention only");
  if (cfg.rotary_dim > 0 && cfg.rotary_dim != cfg.head_dim)
    return make_error(src, ": partial rotary (", cfg.rotary_dim, " of ", cfg.head_dim,
                      " dims) is not written");
  if (!ggml_can_quantize(target.base))
    return make_error("--gguf-type ", target.name(), " is not written");
  AWQ_ASSIGN(GGUFWriter w, GGUFWriter::create(out_path, overwrite));
  GgufModelWriter g(std::move(w));
  g.cfg_ = cfg;
  g.target_ = target;
  return g;
}

Expected<std::string> GgufModelWriter::gguf_name(const std::string& hf) const {
  if (hf == "model.embed_tokens.weight") return std::string("token_embd.weight");
  if (hf == "model.norm.weight") return std::string("output_norm.weight");
  if (hf == "lm_head.weight") return std::string("output.weight");
  static const std::regex blk(R"(model\.layers\.(\d+)\.(.+))");
  std::smatch m;
  if (std::regex_match(hf, m, blk)) {
    const std::string rest = m[2].str(), p = "blk." + m[1].str() + ".";
    for (const NormName& n : cfg_.arch->block_norms)
      if (n.hf == rest) return p + n.gguf;
    for (const LinearName& l : cfg_.arch->linears) {
      if (rest == l.hf + ".weight") return p + l.gguf + ".weight";
      if (rest == l.hf + ".bias") return p + l.gguf + ".bias";
    }
  }
  return make_error("--format gguf: tensor ", hf, " has no llama.cpp name for ", cfg_.arch->name);
}

Status GgufModelWriter::write_matrix(const std::string& name, GGMLType t, const float* W,
                                     int64_t N, int64_t K, const float* imp) {
  const size_t rb = ggml_row_bytes(t, K);
  if (rb == 0 || K % ggml_block_elems(t) != 0)
    return make_error("--format gguf: ", name, ": row length ", K, " does not fit ",
                      ggml_type_name((uint32_t)t), "'s blocks of ", ggml_block_elems(t));
  std::vector<uint8_t> out(rb * (size_t)N);
  std::atomic<int64_t> bad_row{-1};
  std::string err;
#pragma omp parallel for schedule(dynamic, 16)
  for (int64_t r = 0; r < N; ++r) {
    if (bad_row.load(std::memory_order_relaxed) >= 0) continue;
    Status s = quantize_row_ggml(t, W + r * K, K, imp, out.data() + rb * (size_t)r);
    if (!s.ok()) {
      int64_t expect = -1;
      if (bad_row.compare_exchange_strong(expect, r)) err = s.message();
    }
  }
  if (bad_row.load() >= 0)
    return make_error("--format gguf: ", name, ": row ", bad_row.load(), ": ", err);
  return w_.add_tensor(name, t, {(uint64_t)K, (uint64_t)N}, out.data(), out.size());
}

// llama: q/k rows (and biases) of the HF tensor `hf` in llama.cpp's order; else unchanged.
const float* GgufModelWriter::gguf_rows(const std::string& hf, const float* W, int64_t N,
                                        int64_t K, std::vector<float>& buf) const {
  if (!cfg_.arch->gguf_permuted_qk) return W;
  const bool q = hf.ends_with(".q_proj.weight") || hf.ends_with(".q_proj.bias");
  const bool k = hf.ends_with(".k_proj.weight") || hf.ends_with(".k_proj.bias");
  if (!q && !k) return W;
  buf = permute_qk_rows(W, N, K, q ? cfg_.n_heads : cfg_.n_kv_heads);
  return buf.data();
}

Status GgufModelWriter::add_linear(const std::string& prefix, const float* W, int N, int K,
                                   const float* imp, const float* bias) {
  AWQ_ASSIGN(std::string name, gguf_name(prefix + ".weight"));
  std::vector<float> buf;
  std::string note;
  const GGMLType t =
      gguf_tensor_type(target_, name, cfg_.n_layers, K, cfg_.tie_embeddings, imp != nullptr, &note);
  if (!note.empty()) notes_.push_back(note);
  AWQ_TRY(write_matrix(name, t, gguf_rows(prefix + ".weight", W, N, K, buf), N, K, imp));
  if (bias) AWQ_TRY(add_tensor(prefix + ".bias", {N}, bias));
  return Status::Ok();
}

Status GgufModelWriter::add_tensor(const std::string& hf, const std::vector<int64_t>& shape,
                                   const float* data) {
  AWQ_ASSIGN(std::string name, gguf_name(hf));
  std::vector<float> buf;
  if (shape.size() == 1) {  // norms and biases
    data = gguf_rows(hf, data, shape[0], 1, buf);
    return w_.add_tensor(name, GGMLType::F32, {(uint64_t)shape[0]}, data,
                         sizeof(float) * (size_t)shape[0]);
  }
  if (shape.size() != 2) return make_error("--format gguf: ", hf, ": expected 1 or 2 dims");
  const int64_t N = shape[0], K = shape[1];
  const bool embed = hf == "model.embed_tokens.weight";
  const bool output = hf == "lm_head.weight" || (cfg_.tie_embeddings && embed);
  GGMLType t = target_.base;
  if (output || embed) {
    std::string note;
    t = gguf_tensor_type(target_, name, cfg_.n_layers, K, cfg_.tie_embeddings, false, &note);
    if (!note.empty()) notes_.push_back(note);
  } else if (ggml_is_block_type(t)) {
    t = GGMLType::F16;  // a block linear kept unquantized (--modules-to-not-convert)
  }
  return write_matrix(name, t, gguf_rows(hf, data, N, K, buf), N, K, nullptr);
}

Status GgufModelWriter::finish(const std::string& src_dir) {
  const ModelConfig& c = cfg_;
  const std::string arch = c.arch->gguf_arch, kp = arch + ".";
  w_.set_string("general.architecture", arch);
  w_.set_string("general.name", fs::path(src_dir).filename().string());
  w_.set_u32("general.file_type", target_.file_type());
  w_.set_u32("general.quantization_version", 2);
  w_.set_u32(kp + "context_length", (uint32_t)c.max_position);
  w_.set_u32(kp + "embedding_length", (uint32_t)c.hidden);
  w_.set_u32(kp + "block_count", (uint32_t)c.n_layers);
  w_.set_u32(kp + "feed_forward_length", (uint32_t)c.intermediate);
  w_.set_u32(kp + "attention.head_count", (uint32_t)c.n_heads);
  w_.set_u32(kp + "attention.head_count_kv", (uint32_t)c.n_kv_heads);
  w_.set_f32(kp + "attention.layer_norm_rms_epsilon", c.rms_eps);
  w_.set_f32(kp + "rope.freq_base", c.rope_theta);
  w_.set_u32(kp + "rope.dimension_count", (uint32_t)c.rope_dims());
  if (c.head_dim * c.n_heads != c.hidden) {
    w_.set_u32(kp + "attention.key_length", (uint32_t)c.head_dim);
    w_.set_u32(kp + "attention.value_length", (uint32_t)c.head_dim);
  }
  w_.set_u32(kp + "vocab_size", (uint32_t)c.vocab);

  // Tokenizer: byte-level BPE from tokenizer.json (the vocabulary's spelling is GGUF's).
  const std::string tj_path = (fs::path(src_dir) / "tokenizer.json").string();
  AWQ_ASSIGN(std::string tj_text, read_text_file(tj_path));
  nlohmann::json tj = nlohmann::json::parse(tj_text, nullptr, false);
  if (tj.is_discarded() || !tj.contains("model") || !tj["model"].is_object())
    return make_error(tj_path, ": not a tokenizer.json (no \"model\" object)");
  const auto& model = tj["model"];
  if (model.value("type", "") != "BPE" || model.value("byte_fallback", false))
    return make_error(tj_path, ": model.type ", model.value("type", "?"),
                      model.value("byte_fallback", false) ? " with byte_fallback" : "",
                      ": GGUF export writes byte-level BPE (\"gpt2\") tokenizers only");
  const std::string pre = pre_name(tj.value("pre_tokenizer", nlohmann::json()));
  if (pre.empty())
    return make_error(tj_path, ": pre_tokenizer ", tj.value("pre_tokenizer", nlohmann::json()).dump(),
                      " matches none of llama.cpp's pre-tokenizers we map (gpt-2, smollm, "
                      "llama-bpe, qwen2)");
  int64_t n_tok = c.vocab;
  for (const auto& [tokstr, id] : model["vocab"].items()) n_tok = std::max<int64_t>(n_tok, id.get<int64_t>() + 1);
  for (const auto& a : tj.value("added_tokens", nlohmann::json::array()))
    n_tok = std::max<int64_t>(n_tok, a.value("id", 0) + 1);
  if (n_tok != c.vocab)
    return make_error(tj_path, ": ", n_tok, " token ids, but config.json vocab_size is ", c.vocab,
                      " (llama.cpp needs one token per embedding row)");
  std::vector<std::string> tokens(n_tok);
  std::vector<int32_t> types(n_tok, 0);
  for (const auto& [tokstr, id] : model["vocab"].items()) {
    tokens[id.get<int64_t>()] = tokstr;
    types[id.get<int64_t>()] = 1;  // NORMAL
  }
  std::map<std::string, int64_t> id_of;
  for (const auto& a : tj.value("added_tokens", nlohmann::json::array())) {
    const int64_t id = a.value("id", 0);
    tokens[id] = a.value("content", "");
    types[id] = a.value("special", false) ? 3 : 4;  // CONTROL : USER_DEFINED
  }
  for (int64_t i = 0; i < n_tok; ++i) {
    if (types[i] == 0) tokens[i] = "[PAD" + std::to_string(i) + "]", types[i] = 5;  // UNUSED
    id_of.emplace(tokens[i], i);
  }
  std::vector<std::string> merges;
  for (const auto& m : model.value("merges", nlohmann::json::array())) {
    if (m.is_string()) merges.push_back(m.get<std::string>());
    else if (m.is_array() && m.size() == 2) merges.push_back(m[0].get<std::string>() + " " + m[1].get<std::string>());
    else return make_error(tj_path, ": model.merges entry ", m.dump(), " is not a pair");
  }
  w_.set_string("tokenizer.ggml.model", "gpt2");
  w_.set_string("tokenizer.ggml.pre", pre);
  w_.set_string_array("tokenizer.ggml.tokens", tokens);
  w_.set_i32_array("tokenizer.ggml.token_type", types);
  w_.set_string_array("tokenizer.ggml.merges", merges);

  nlohmann::json tc = nlohmann::json::object();
  const fs::path tc_path = fs::path(src_dir) / "tokenizer_config.json";
  if (fs::exists(tc_path)) {
    AWQ_ASSIGN(std::string t, read_text_file(tc_path.string()));
    tc = nlohmann::json::parse(t, nullptr, false);
    if (tc.is_discarded() || !tc.is_object())
      return make_error(tc_path.string(), ": not a JSON object");
  }
  auto token_field = [&](const char* field) -> int64_t {  // "bos_token": "<s>" or {"content": ..}
    if (!tc.contains(field)) return -1;
    const auto& v = tc[field];
    const std::string s = v.is_string() ? v.get<std::string>()
                          : v.is_object() ? v.value("content", "") : "";
    auto it = id_of.find(s);
    return it == id_of.end() ? -1 : it->second;
  };
  int64_t bos = token_field("bos_token"), eos = token_field("eos_token");
  // Without tokenizer_config.json flags, tokenizer.json's TemplateProcessing says whether a
  // special token opens (BOS) or closes (EOS) every sequence (as llama.cpp's SpecialVocab reads it).
  std::optional<bool> add_bos, add_eos;
  if (tc.contains("add_bos_token") && tc["add_bos_token"].is_boolean()) add_bos = tc["add_bos_token"].get<bool>();
  if (tc.contains("add_eos_token") && tc["add_eos_token"].is_boolean()) add_eos = tc["add_eos_token"].get<bool>();
  nlohmann::json pp = tj.value("post_processor", nlohmann::json());
  if (pp.is_object() && pp.value("type", "") == "Sequence")  // Llama 3: ByteLevel + template
    for (const auto& sub : pp.value("processors", nlohmann::json::array()))
      if (sub.is_object() && sub.value("type", "") == "TemplateProcessing") pp = sub;
  if (pp.is_object() && pp.value("type", "") == "TemplateProcessing" && pp.contains("single") &&
      pp["single"].is_array() && !pp["single"].empty()) {
    auto special_id = [&](const nlohmann::json& item) -> int64_t {
      if (!item.is_object() || !item.contains("SpecialToken")) return -1;
      auto it = id_of.find(item["SpecialToken"].value("id", ""));
      return it == id_of.end() ? -1 : it->second;
    };
    const int64_t first = special_id(pp["single"].front()), last = special_id(pp["single"].back());
    if (!add_bos) add_bos = first >= 0;
    if (!add_eos) add_eos = last >= 0 && pp["single"].size() > 1;
    if (bos < 0 && first >= 0) bos = first;
    if (eos < 0 && last >= 0 && pp["single"].size() > 1) eos = last;
  }
  if (bos < 0 && c.bos_id >= 0) bos = c.bos_id;
  if (eos < 0 && !c.eos_ids.empty()) eos = c.eos_ids[0];
  if (bos >= 0) w_.set_u32("tokenizer.ggml.bos_token_id", (uint32_t)bos);
  if (eos >= 0) w_.set_u32("tokenizer.ggml.eos_token_id", (uint32_t)eos);
  if (int64_t u = token_field("unk_token"); u >= 0) w_.set_u32("tokenizer.ggml.unknown_token_id", (uint32_t)u);
  if (int64_t p = token_field("pad_token"); p >= 0) w_.set_u32("tokenizer.ggml.padding_token_id", (uint32_t)p);
  if (add_bos) w_.set_bool("tokenizer.ggml.add_bos_token", *add_bos);
  if (add_eos) w_.set_bool("tokenizer.ggml.add_eos_token", *add_eos);
  if (tc.contains("chat_template") && tc["chat_template"].is_string())
    w_.set_string("tokenizer.chat_template", tc["chat_template"].get<std::string>());
  return w_.finish();
}

}  // namespace awq
