// GGUF -> HF directory conversion for the llama architecture. Tensor names, the q/k row
// un-permutation and the tokenizer.json layout follow what HF Transformers' GGUF loader builds
// (modeling_gguf_pytorch_utils.py, integrations/gguf/gguf_tokenizer_mapping.py), so the
// result can be checked against it tensor by tensor (scripts/check_convert.py).
#include "io/gguf_convert.h"

#include "core/cancel.h"
#include "io/tokenizer_text.h"

#include "io/gguf_dequant.h"

#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <cstdio>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <regex>
#include <set>

namespace awq {
namespace fs = std::filesystem;
using ojson = nlohmann::ordered_json;

namespace {

std::string dump(const ojson& j) {
  return j.dump(2, ' ', false, ojson::error_handler_t::replace) + "\n";
}

// ---- tensor names -----------------------------------------------------------------------
const std::map<std::string, std::string>& layer_names() {
  static const std::map<std::string, std::string> m = {
      {"attn_norm.weight", "input_layernorm.weight"},
      {"ffn_norm.weight", "post_attention_layernorm.weight"},
      {"attn_q.weight", "self_attn.q_proj.weight"},
      {"attn_k.weight", "self_attn.k_proj.weight"},
      {"attn_v.weight", "self_attn.v_proj.weight"},
      {"attn_output.weight", "self_attn.o_proj.weight"},
      {"ffn_gate.weight", "mlp.gate_proj.weight"},
      {"ffn_up.weight", "mlp.up_proj.weight"},
      {"ffn_down.weight", "mlp.down_proj.weight"},
  };
  return m;
}

// ---- metadata helpers -------------------------------------------------------------------
std::optional<int64_t> opt_int(const GGUFFile& g, const std::string& k) {
  if (!g.has(k)) return std::nullopt;
  auto v = g.get_i64(k);
  return v.ok() ? std::optional<int64_t>(*v) : std::nullopt;
}

struct LlamaDims {
  int64_t hidden, inter, layers, n_heads, n_kv_heads, head_dim, vocab, ctx;
  bool head_dim_given;
  float eps, rope_theta;
};

Expected<LlamaDims> llama_dims(const GGUFFile& g) {
  AWQ_ASSIGN(std::string arch, g.get_string("general.architecture"));
  if (arch != "llama")
    return make_error(g.path(), ": general.architecture is \"", arch,
                      "\"; only \"llama\" models can be converted");
  LlamaDims d{};
  AWQ_ASSIGN(d.hidden, g.get_i64("llama.embedding_length"));
  AWQ_ASSIGN(d.inter, g.get_i64("llama.feed_forward_length"));
  AWQ_ASSIGN(d.layers, g.get_i64("llama.block_count"));
  AWQ_ASSIGN(d.n_heads, g.get_i64("llama.attention.head_count"));
  if (const GGUFValue* kv = g.find("llama.attention.head_count_kv");
      kv && kv->type == GGUFValueType::ARRAY)
    return make_error(g.path(), ": llama.attention.head_count_kv is a per-layer array; "
                                "only a single value is supported");
  d.n_kv_heads = opt_int(g, "llama.attention.head_count_kv").value_or(d.n_heads);
  AWQ_ASSIGN(d.eps, g.get_f32("llama.attention.layer_norm_rms_epsilon"));
  d.rope_theta = g.has("llama.rope.freq_base") ? *g.get_f32("llama.rope.freq_base") : 10000.f;
  d.ctx = opt_int(g, "llama.context_length").value_or(2048);
  if (d.hidden <= 0 || d.layers <= 0 || d.n_heads <= 0 || d.n_kv_heads <= 0 || d.inter <= 0)
    return make_error(g.path(), ": llama dimensions must be positive (embedding_length ", d.hidden,
                      ", block_count ", d.layers, ", head_count ", d.n_heads, ", head_count_kv ",
                      d.n_kv_heads, ", feed_forward_length ", d.inter, ")");
  if (d.n_heads % d.n_kv_heads != 0)
    return make_error(g.path(), ": head_count ", d.n_heads, " is not a multiple of head_count_kv ",
                      d.n_kv_heads);
  d.head_dim_given = g.has("llama.attention.key_length");
  d.head_dim = d.head_dim_given ? opt_int(g, "llama.attention.key_length").value_or(0)
                                : d.hidden / d.n_heads;
  if (d.head_dim <= 0 || d.head_dim % 2 != 0)
    return make_error(g.path(), ": head_dim ", d.head_dim, " must be positive and even for RoPE");
  if (auto v = opt_int(g, "llama.vocab_size")) {
    d.vocab = *v;
  } else if (const GGUFValue* t = g.get_array("tokenizer.ggml.tokens")) {
    d.vocab = int64_t(t->arr.size());
  } else if (const GGUFTensor* e = g.find_tensor("token_embd.weight"); e && e->ne.size() == 2) {
    d.vocab = int64_t(e->ne[1]);
  } else {
    return make_error(g.path(), ": cannot tell the vocabulary size (no llama.vocab_size, "
                                "tokenizer.ggml.tokens or token_embd.weight)");
  }
  return d;
}

// ---- byte-level alphabet (GPT-2's bytes_to_unicode) -----------------------------------------
struct ByteLevel {
  uint32_t byte_to_cp[256];
  std::set<uint32_t> alphabet;
  ByteLevel() {
    int n = 0;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174);
      byte_to_cp[b] = printable ? uint32_t(b) : uint32_t(256 + n++);
      alphabet.insert(byte_to_cp[b]);
    }
  }
};
const ByteLevel& byte_level() {
  static const ByteLevel bl;
  return bl;
}

// Decode UTF-8; false on malformed input.
bool decode_utf8(const std::string& s, std::vector<uint32_t>& cps) {
  cps.clear();
  for (size_t i = 0; i < s.size();) {
    const uint8_t c = uint8_t(s[i]);
    int len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (!len || i + size_t(len) > s.size()) return false;
    uint32_t cp = len == 1 ? c : len == 2 ? (c & 0x1F) : len == 3 ? (c & 0x0F) : (c & 0x07);
    for (int k = 1; k < len; ++k) {
      const uint8_t cc = uint8_t(s[i + size_t(k)]);
      if ((cc >> 6) != 2) return false;
      cp = (cp << 6) | (cc & 0x3F);
    }
    cps.push_back(cp);
    i += size_t(len);
  }
  return true;
}

bool in_alphabet(const std::string& tok) {
  std::vector<uint32_t> cps;
  if (!decode_utf8(tok, cps)) return false;
  const auto& a = byte_level().alphabet;
  return std::all_of(cps.begin(), cps.end(), [&](uint32_t cp) { return a.count(cp) != 0; });
}

// A vocabulary entry as Transformers spells it: kept when every character is already in the
// byte alphabet, otherwise its UTF-8 bytes are written in the alphabet.
std::string byte_level_spelling(const std::string& tok) {
  if (in_alphabet(tok)) return tok;
  std::string out;
  for (unsigned char b : tok) tok::utf8_append(out, byte_level().byte_to_cp[b]);
  return out;
}

// Split regexes Transformers installs for some tokenizer.ggml.pre values
// (gguf_tokenizer_mapping.py GGUF_PRE_TOKENIZER_SPLITS); others keep GPT-2's ByteLevel regex.
const char* split_regex_for(const std::string& pre) {
  static const char* llama3 =
      R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
  static const char* tekken =
      R"([^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
  static const char* gpt4o =
      R"([^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
  static const char* qwen2 =
      R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
  static const char* qwen35 =
      R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?[\p{L}\p{M}]+|\p{N}| ?[^\s\p{L}\p{M}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
  static const std::map<std::string, const char*> m = {
      {"llama3", llama3},    {"llama-v3", llama3},  {"llama-bpe", llama3},
      {"falcon3", llama3},   {"falcon-h1", llama3}, {"pixtral", llama3},
      {"midm-2.0", llama3},  {"lfm2", llama3},      {"jina-v5-nano", llama3},
      {"dbrx", llama3},      {"smaug-bpe", llama3}, {"tekken", tekken},
      {"qwen2", qwen2},      {"deepseek-r1-qwen", qwen2}, {"kormo", qwen2},
      {"f2llmv2", qwen2},    {"megrez", qwen2},     {"qwen35", qwen35},
      {"gpt-4o", gpt4o},     {"llama4", gpt4o},     {"kanana2", gpt4o},
      {"talkie", gpt4o},     {"minimax-m2", gpt4o},
  };
  auto it = m.find(pre);
  return it == m.end() ? nullptr : it->second;
}

struct SpecialTokens {
  std::optional<std::string> bos, eos, unk, pad;
  std::optional<int64_t> bos_id, eos_id, unk_id, pad_id;
  bool add_bos = false, add_eos = false;
};

Expected<SpecialTokens> special_tokens(const GGUFFile& g, const std::vector<std::string>& toks) {
  SpecialTokens s;
  auto one = [&](const char* key, std::optional<std::string>& tok,
                 std::optional<int64_t>& id) -> Status {
    const std::string k = std::string("tokenizer.ggml.") + key;
    if (!g.has(k)) return Status::Ok();
    AWQ_ASSIGN(int64_t v, g.get_i64(k));
    if (v < 0 || v >= int64_t(toks.size()))
      return make_error(g.path(), ": ", k, " = ", v, " is outside the vocabulary of ",
                        toks.size(), " tokens");
    id = v;
    tok = toks[size_t(v)];
    return Status::Ok();
  };
  AWQ_TRY(one("bos_token_id", s.bos, s.bos_id));
  AWQ_TRY(one("eos_token_id", s.eos, s.eos_id));
  AWQ_TRY(one("unknown_token_id", s.unk, s.unk_id));
  AWQ_TRY(one("padding_token_id", s.pad, s.pad_id));
  if (g.has("tokenizer.ggml.add_bos_token")) {
    AWQ_ASSIGN(s.add_bos, g.get_bool("tokenizer.ggml.add_bos_token"));
  }
  if (g.has("tokenizer.ggml.add_eos_token")) {
    AWQ_ASSIGN(s.add_eos, g.get_bool("tokenizer.ggml.add_eos_token"));
  }
  if (!s.bos) s.add_bos = false;
  if (!s.eos) s.add_eos = false;
  return s;
}

Status check_gpt2_tokenizer(const GGUFFile& g) {
  AWQ_ASSIGN(std::string model, g.get_string("tokenizer.ggml.model"));
  if (model != "gpt2")
    return make_error(g.path(), ": tokenizer.ggml.model is \"", model,
                      "\"; only byte-level BPE (\"gpt2\") tokenizers can be converted");
  return Status::Ok();
}

ojson opt_json(const std::optional<int64_t>& v) { return v ? ojson(*v) : ojson(nullptr); }
ojson opt_json(const std::optional<std::string>& v) { return v ? ojson(*v) : ojson(nullptr); }

struct TempDir {
  std::string path;
  bool keep = false;
  ~TempDir() {
    if (!keep && !path.empty()) {
      std::error_code ec;
      fs::remove_all(path, ec);
    }
  }
};

}  // namespace

Expected<std::string> llama_hf_tensor_name(const std::string& n) {
  if (n == "token_embd.weight") return std::string("model.embed_tokens.weight");
  if (n == "output_norm.weight") return std::string("model.norm.weight");
  if (n == "output.weight") return std::string("lm_head.weight");
  if (n == "rope_freqs.weight") return std::string();  // recomputed from config by HF
  static const std::regex blk(R"(blk\.(\d+)\.(.+))");
  std::smatch m;
  if (std::regex_match(n, m, blk)) {
    auto it = layer_names().find(m[2].str());
    if (it != layer_names().end())
      return "model.layers." + m[1].str() + "." + it->second;
  }
  return make_error("tensor \"", n, "\" has no Hugging Face llama counterpart");
}

Status unpermute_qk_rows(float* w, int64_t rows, int64_t cols, int64_t n_heads) {
  if (n_heads <= 0 || rows % (2 * n_heads) != 0)
    return make_error("q/k un-permute: ", rows, " rows is not a multiple of 2 x ", n_heads,
                      " heads");
  const int64_t head_dim = rows / n_heads, half = head_dim / 2;
  std::vector<float> tmp(size_t(head_dim * cols));
  for (int64_t h = 0; h < n_heads; ++h) {
    float* head = w + h * head_dim * cols;
    for (int64_t i = 0; i < half; ++i)
      for (int64_t j = 0; j < 2; ++j)
        std::copy_n(head + (2 * i + j) * cols, cols, tmp.data() + (j * half + i) * cols);
    std::copy(tmp.begin(), tmp.end(), head);
  }
  return Status::Ok();
}

Expected<std::string> build_config_json(const GGUFFile& g, DType dtype) {
  AWQ_ASSIGN(LlamaDims d, llama_dims(g));
  ojson c;
  c["architectures"] = {"LlamaForCausalLM"};
  c["model_type"] = "llama";
  c["hidden_size"] = d.hidden;
  c["intermediate_size"] = d.inter;
  c["num_hidden_layers"] = d.layers;
  c["num_attention_heads"] = d.n_heads;
  c["num_key_value_heads"] = d.n_kv_heads;
  if (d.head_dim_given) c["head_dim"] = d.head_dim;
  c["hidden_act"] = "silu";
  c["rms_norm_eps"] = double(d.eps);
  c["rope_theta"] = double(d.rope_theta);
  c["max_position_embeddings"] = d.ctx;
  c["vocab_size"] = d.vocab;
  c["tie_word_embeddings"] = g.find_tensor("output.weight") == nullptr;
  c["attention_bias"] = false;
  c["mlp_bias"] = false;
  c["bos_token_id"] = opt_json(opt_int(g, "tokenizer.ggml.bos_token_id"));
  c["eos_token_id"] = opt_json(opt_int(g, "tokenizer.ggml.eos_token_id"));
  if (auto p = opt_int(g, "tokenizer.ggml.padding_token_id")) c["pad_token_id"] = *p;
  if (g.has("llama.rope.scaling.type")) {
    AWQ_ASSIGN(std::string t, g.get_string("llama.rope.scaling.type"));
    if (t != "none") {
      ojson rs;
      rs["rope_type"] = t;
      rs["type"] = t;
      if (g.has("llama.rope.scaling.factor"))
        rs["factor"] = double(*g.get_f32("llama.rope.scaling.factor"));
      if (auto o = opt_int(g, "llama.rope.scaling.original_context_length"))
        rs["original_max_position_embeddings"] = *o;
      c["rope_scaling"] = rs;
    }
  } else if (g.has("llama.rope.scale_linear")) {
    c["rope_scaling"] = {{"rope_type", "linear"},
                         {"type", "linear"},
                         {"factor", double(*g.get_f32("llama.rope.scale_linear"))}};
  }
  c["torch_dtype"] = dtype == DType::F32 ? "float32" : dtype == DType::F16 ? "float16" : "bfloat16";
  return dump(c);
}

Expected<std::string> build_tokenizer_json(const GGUFFile& g) {
  AWQ_TRY(check_gpt2_tokenizer(g));
  AWQ_ASSIGN(auto toks, g.get_string_array("tokenizer.ggml.tokens"));
  std::vector<int64_t> types;
  if (g.has("tokenizer.ggml.token_type")) {
    AWQ_ASSIGN(types, g.get_int_array("tokenizer.ggml.token_type"));
  }
  if (!types.empty() && types.size() != toks.size())
    return make_error(g.path(), ": tokenizer.ggml.token_type has ", types.size(),
                      " entries, expected one per token (", toks.size(), ")");
  std::vector<std::string> merges;
  if (g.has("tokenizer.ggml.merges")) {
    AWQ_ASSIGN(merges, g.get_string_array("tokenizer.ggml.merges"));
  }
  AWQ_ASSIGN(SpecialTokens sp, special_tokens(g, toks));

  ojson vocab = ojson::object();
  for (size_t i = 0; i < toks.size(); ++i) vocab[byte_level_spelling(toks[i])] = int64_t(i);
  ojson mj = ojson::array();
  for (const auto& m : merges) {
    ojson parts = ojson::array();
    size_t start = 0;
    for (size_t p; (p = m.find(' ', start)) != std::string::npos; start = p + 1)
      parts.push_back(m.substr(start, p - start));
    parts.push_back(m.substr(start));
    mj.push_back(parts);
  }

  // Added tokens: CONTROL (3) spelled in the byte alphabet -> special; USER_DEFINED (4) that
  // are in the vocabulary -> not special. Listed by id.
  std::map<int64_t, ojson> added;
  for (size_t i = 0; i < types.size(); ++i) {
    const bool control = types[i] == 3 && in_alphabet(toks[i]);
    const bool user = types[i] == 4 && vocab.contains(toks[i]);
    if (!control && !user) continue;
    const int64_t id = vocab.at(toks[i]).get<int64_t>();
    if (added.count(id)) continue;
    added[id] = ojson{{"id", id},          {"content", toks[i]}, {"single_word", false},
                      {"lstrip", false},   {"rstrip", false},    {"normalized", false},
                      {"special", control}};
  }
  ojson added_list = ojson::array();
  for (auto& [id, a] : added) added_list.push_back(a);

  std::string pre = g.has("tokenizer.ggml.pre") ? g.get_string("tokenizer.ggml.pre").value() : "";
  ojson pre_tok;
  if (const char* split = split_regex_for(pre)) {
    pre_tok = {{"type", "Sequence"},
               {"pretokenizers",
                {{{"type", "Split"},
                  {"pattern", {{"Regex", split}}},
                  {"behavior", "Isolated"},
                  {"invert", false}},
                 {{"type", "ByteLevel"},
                  {"add_prefix_space", false},
                  {"trim_offsets", true},
                  {"use_regex", false}}}}};
  } else {
    pre_tok = {{"type", "ByteLevel"},
               {"add_prefix_space", false},
               {"trim_offsets", true},
               {"use_regex", true}};
  }

  // Post-processor as Transformers' update_post_processor: [bos] $A [eos], pair adds [bos] $B [eos].
  auto special = [](const std::string& t, int type_id) {
    return ojson{{"SpecialToken", {{"id", t}, {"type_id", type_id}}}};
  };
  auto seq = [](const char* id, int type_id) {
    return ojson{{"Sequence", {{"id", id}, {"type_id", type_id}}}};
  };
  ojson single = ojson::array(), pair = ojson::array(), specials = ojson::object();
  if (sp.add_bos) single.push_back(special(*sp.bos, 0));
  single.push_back(seq("A", 0));
  if (sp.add_eos) single.push_back(special(*sp.eos, 0));
  pair = single;
  if (sp.add_bos) pair.push_back(special(*sp.bos, 1));
  pair.push_back(seq("B", 1));
  if (sp.add_eos) pair.push_back(special(*sp.eos, 1));
  if (sp.add_bos) specials[*sp.bos] = {{"id", *sp.bos}, {"ids", {*sp.bos_id}}, {"tokens", {*sp.bos}}};
  if (sp.add_eos) specials[*sp.eos] = {{"id", *sp.eos}, {"ids", {*sp.eos_id}}, {"tokens", {*sp.eos}}};

  ojson t;
  t["version"] = "1.0";
  t["truncation"] = nullptr;
  t["padding"] = nullptr;
  t["added_tokens"] = added_list;
  t["normalizer"] = nullptr;
  t["pre_tokenizer"] = pre_tok;
  t["post_processor"] = {{"type", "TemplateProcessing"},
                         {"single", single},
                         {"pair", pair},
                         {"special_tokens", specials}};
  t["decoder"] = {{"type", "ByteLevel"},
                  {"add_prefix_space", true},
                  {"trim_offsets", true},
                  {"use_regex", true}};
  t["model"] = {{"type", "BPE"},
                {"dropout", nullptr},
                {"unk_token", nullptr},
                {"continuing_subword_prefix", ""},
                {"end_of_word_suffix", ""},
                {"fuse_unk", false},
                {"byte_fallback", false},
                {"ignore_merges", false},
                {"vocab", vocab},
                {"merges", mj}};
  return t.dump(-1, ' ', false, ojson::error_handler_t::replace) + "\n";
}

Expected<std::string> build_tokenizer_config_json(const GGUFFile& g) {
  AWQ_TRY(check_gpt2_tokenizer(g));
  AWQ_ASSIGN(auto toks, g.get_string_array("tokenizer.ggml.tokens"));
  AWQ_ASSIGN(SpecialTokens sp, special_tokens(g, toks));
  ojson c;
  c["add_bos_token"] = sp.add_bos;
  c["add_eos_token"] = sp.add_eos;
  c["bos_token"] = opt_json(sp.bos);
  c["eos_token"] = opt_json(sp.eos);
  c["unk_token"] = opt_json(sp.unk);
  c["pad_token"] = opt_json(sp.pad);
  if (g.has("tokenizer.chat_template")) {
    AWQ_ASSIGN(c["chat_template"], g.get_string("tokenizer.chat_template"));
  }
  c["model_max_length"] = opt_int(g, "llama.context_length").value_or(2048);
  c["clean_up_tokenization_spaces"] = false;
  c["tokenizer_class"] = "PreTrainedTokenizerFast";
  return dump(c);
}

Expected<std::string> build_generation_config_json(const GGUFFile& g) {
  ojson c;
  c["_from_model_config"] = true;
  c["bos_token_id"] = opt_json(opt_int(g, "tokenizer.ggml.bos_token_id"));
  c["eos_token_id"] = opt_json(opt_int(g, "tokenizer.ggml.eos_token_id"));
  if (auto p = opt_int(g, "tokenizer.ggml.padding_token_id")) c["pad_token_id"] = *p;
  return dump(c);
}

Status convert_gguf_to_hf(const std::string& gguf_path, const std::string& out_dir,
                          const ConvertOptions& opts) {
  if (opts.dtype != DType::F32 && opts.dtype != DType::F16 && opts.dtype != DType::BF16)
    return make_error("convert: --dtype must be f32, f16 or bf16, got ", dtype_name(opts.dtype));
  AWQ_ASSIGN(GGUFFile g, GGUFFile::open(gguf_path));
  AWQ_ASSIGN(LlamaDims d, llama_dims(g));

  // Map and check every tensor before writing anything.
  struct Job {
    const GGUFTensor* t;
    std::string hf;
  };
  std::vector<Job> jobs;
  std::set<std::string> have;
  for (const auto& t : g.tensors()) {
    auto hf = llama_hf_tensor_name(t.name);
    if (!hf.ok()) return make_error(gguf_path, ": ", hf.error().message);
    if (hf->empty()) continue;
    if (!ggml_can_dequantize(t.type))
      return make_error(gguf_path, ": tensor \"", t.name, "\" has type ", ggml_type_name(t.type),
                        ", which cannot be dequantized (supported: F32, F16, BF16, Q8_0, Q4_0, "
                        "Q4_1, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K)");
    if (t.ne.size() > 2)
      return make_error(gguf_path, ": tensor \"", t.name, "\" has ", t.ne.size(),
                        " dims, expected 1 or 2");
    have.insert(*hf);
    jobs.push_back({&t, *hf});
  }
  auto shape_of = [&](const std::string& hf) -> std::vector<int64_t> {
    const int64_t q = d.n_heads * d.head_dim, kv = d.n_kv_heads * d.head_dim;
    if (hf == "model.embed_tokens.weight" || hf == "lm_head.weight") return {d.vocab, d.hidden};
    if (hf == "model.norm.weight") return {d.hidden};
    auto ends = [&](const char* s) { return hf.size() >= strlen(s) && hf.ends_with(s); };
    if (ends("layernorm.weight")) return {d.hidden};
    if (ends("q_proj.weight")) return {q, d.hidden};
    if (ends("k_proj.weight") || ends("v_proj.weight")) return {kv, d.hidden};
    if (ends("o_proj.weight")) return {d.hidden, q};
    if (ends("gate_proj.weight") || ends("up_proj.weight")) return {d.inter, d.hidden};
    if (ends("down_proj.weight")) return {d.hidden, d.inter};
    return {};
  };
  std::vector<std::string> required = {"model.embed_tokens.weight", "model.norm.weight"};
  for (int64_t l = 0; l < d.layers; ++l)
    for (const auto& [k, v] : layer_names())
      required.push_back("model.layers." + std::to_string(l) + "." + v);
  for (const auto& r : required)
    if (!have.count(r))
      return make_error(gguf_path, ": missing tensor for ", r, " (", d.layers, " layers expected)");
  for (const auto& j : jobs) {
    const auto want = shape_of(j.hf);
    if (j.t->shape() != want) {
      std::string w, got;
      for (auto x : want) w += std::to_string(x) + " ";
      for (auto x : j.t->shape()) got += std::to_string(x) + " ";
      return make_error(gguf_path, ": tensor \"", j.t->name, "\" (", j.hf, ") has shape [ ", got,
                        "], expected [ ", w, "] from the llama.* metadata");
    }
  }
  // Build every document first so a tokenizer problem fails before the slow part.
  AWQ_ASSIGN(std::string config, build_config_json(g, opts.dtype));
  AWQ_ASSIGN(std::string tokenizer, build_tokenizer_json(g));
  AWQ_ASSIGN(std::string tok_config, build_tokenizer_config_json(g));
  AWQ_ASSIGN(std::string gen_config, build_generation_config_json(g));

  std::error_code ec;
  if (fs::exists(out_dir, ec) && !(fs::is_directory(out_dir, ec) && fs::is_empty(out_dir, ec)))
    return make_error(out_dir, ": already exists and is not an empty directory; remove it or "
                               "choose another output directory");
  TempDir tmp{out_dir + ".tmp-" + std::to_string(getpid())};
  fs::remove_all(tmp.path, ec);
  if (!fs::create_directories(tmp.path, ec))
    return make_error(tmp.path, ": cannot create directory: ", ec.message());
  {
    SafeTensorsWriter w(tmp.path, opts.max_shard_bytes);
    for (size_t i = 0; i < jobs.size(); ++i) {
      AWQ_TRY(check_cancel("convert"));  // the temp dir is removed on the way out
      const auto& j = jobs[i];
      if (opts.progress)
        std::fprintf(stderr, "[%zu/%zu] %s (%s) -> %s\n", i + 1, jobs.size(), j.t->name.c_str(),
                     ggml_type_name(j.t->type).c_str(), j.hf.c_str());
      AWQ_ASSIGN(std::vector<float> v, g.dequantize(*j.t));
      const auto shape = j.t->shape();
      const bool is_q = j.hf.ends_with("q_proj.weight"), is_k = j.hf.ends_with("k_proj.weight");
      if (is_q || is_k) {
        Status s = unpermute_qk_rows(v.data(), shape[0], shape[1], is_q ? d.n_heads : d.n_kv_heads);
        if (!s.ok()) return make_error(gguf_path, ": tensor \"", j.t->name, "\": ", s.message());
      }
      AWQ_TRY(w.add_f32(j.hf, opts.dtype, shape, v.data()));
    }
    AWQ_TRY(w.finish());
  }
  AWQ_TRY(check_cancel("convert"));
  const fs::path tp(tmp.path);
  AWQ_TRY(write_file_atomic((tp / "config.json").string(), config));
  AWQ_TRY(write_file_atomic((tp / "tokenizer.json").string(), tokenizer));
  AWQ_TRY(write_file_atomic((tp / "tokenizer_config.json").string(), tok_config));
  AWQ_TRY(write_file_atomic((tp / "generation_config.json").string(), gen_config));
  if (fs::exists(out_dir, ec)) fs::remove(out_dir, ec);  // empty directory checked above
  fs::rename(tmp.path, out_dir, ec);
  if (ec) return make_error(out_dir, ": cannot rename ", tmp.path, " into place: ", ec.message());
  tmp.keep = true;
  return Status::Ok();
}

}  // namespace awq
