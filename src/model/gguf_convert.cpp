// GGUF -> HF directory conversion for every family whose description (model/arch.h) names a
// GGUF architecture: tensor names come from the description's GGUF/HF name pairs. Tensor names,
// the q/k row un-permutation (llama only), Gemma's norm offset and the tokenizer.json layout
// follow what HF Transformers' GGUF loader builds
// (modeling_gguf_pytorch_utils.py, integrations/gguf/gguf_tokenizer_mapping.py), so the
// result can be checked against it tensor by tensor (scripts/check_convert.py).
#include "model/gguf_convert.h"

#include "core/cancel.h"

#include "io/gguf_dequant.h"
#include "io/tokenizer_text.h"
#include "model/arch.h"

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
#include <unordered_map>

namespace awq {
namespace fs = std::filesystem;
using ojson = nlohmann::ordered_json;

namespace {

std::string dump(const ojson& j) {
  return j.dump(2, ' ', false, ojson::error_handler_t::replace) + "\n";
}

// ---- tensor names -----------------------------------------------------------------------
// GGUF name under "blk.N." -> HF name under "model.layers.N.", from the description.
// Fused modules (Phi-3) are stored fused on both sides; their parts have no tensor of their own.
// A MoE router maps one to one; the stacked expert tensors are split (expert_tensor()).
std::map<std::string, std::string> layer_names(const Architecture& a, bool with_bias) {
  std::map<std::string, std::string> m;
  for (const NormName& n : a.block_norms) m[n.gguf] = n.hf;
  for (const LinearName& l : a.linears) {
    if (a.fused_of(l.name)) continue;
    m[l.gguf + ".weight"] = l.hf + ".weight";
    if (with_bias) m[l.gguf + ".bias"] = l.hf + ".bias";
  }
  for (const FusedLinear& f : a.fused) m[f.gguf + ".weight"] = f.hf + ".weight";
  if (a.moe) m[a.moe_names.gguf_router + ".weight"] = a.moe_names.router + ".weight";
  if (a.has_shared_expert()) {
    const MoeNames& n = a.moe_names;
    m[n.gguf_shared_gate + ".weight"] = n.shared + "gate_proj.weight";
    m[n.gguf_shared_up + ".weight"] = n.shared + "up_proj.weight";
    m[n.gguf_shared_down + ".weight"] = n.shared + "down_proj.weight";
    m[n.gguf_shared_inp + ".weight"] = n.shared_gate + ".weight";
  }
  return m;
}

// A stacked expert tensor "blk.N.<stem>.weight": the expert module's name under "experts.E.".
std::string expert_module(const Architecture& a, const std::string& stem_weight) {
  const MoeNames& n = a.moe_names;
  if (stem_weight == n.gguf_gate + ".weight") return n.gate;
  if (stem_weight == n.gguf_up + ".weight") return n.up;
  if (stem_weight == n.gguf_down + ".weight") return n.down;
  return {};
}

// ---- metadata helpers -------------------------------------------------------------------
std::optional<int64_t> opt_int(const GGUFFile& g, const std::string& k) {
  if (!g.has(k)) return std::nullopt;
  auto v = g.get_i64(k);
  return v.ok() ? std::optional<int64_t>(*v) : std::nullopt;
}

struct LlamaDims {
  const Architecture* arch = nullptr;
  std::string kp;  // metadata key prefix: "<general.architecture>."
  int64_t hidden, inter, layers, n_heads, n_kv_heads, head_dim, vocab, ctx;
  bool head_dim_given;
  float eps, rope_theta;
  int64_t n_experts = 0, top_k = 0, moe_inter = 0;  // MoE families
  int64_t shared_inter = 0;                          // Qwen 2-MoE's shared expert
};

Expected<LlamaDims> llama_dims(const GGUFFile& g) {
  AWQ_ASSIGN(std::string arch, g.get_string("general.architecture"));
  auto a = find_gguf_architecture(arch);
  if (!a) return make_error(g.path(), ": ", a.error().message);
  LlamaDims d{};
  d.arch = *a;
  d.kp = arch + ".";
  // llama.cpp writes Mixtral as "llama" plus expert_count (and ffn_*_exps tensors).
  if (arch == "llama" && opt_int(g, d.kp + "expert_count").value_or(0) > 0)
    d.arch = &mixtral_architecture();
  const std::string& kp = d.kp;
  AWQ_ASSIGN(d.hidden, g.get_i64(kp + "embedding_length"));
  AWQ_ASSIGN(d.inter, g.get_i64(kp + "feed_forward_length"));
  AWQ_ASSIGN(d.layers, g.get_i64(kp + "block_count"));
  AWQ_ASSIGN(d.n_heads, g.get_i64(kp + "attention.head_count"));
  if (const GGUFValue* kv = g.find(kp + "attention.head_count_kv");
      kv && kv->type == GGUFValueType::ARRAY)
    return make_error(g.path(), ": ", kp, "attention.head_count_kv is a per-layer array; "
                                "only a single value is supported");
  d.n_kv_heads = opt_int(g, kp + "attention.head_count_kv").value_or(d.n_heads);
  d.n_experts = opt_int(g, kp + "expert_count").value_or(0);
  if (d.n_experts > 0 && !d.arch->moe)
    return make_error(g.path(), ": ", kp, "expert_count = ", d.n_experts, ": ", arch,
                      " with experts is not a family we read (mixture-of-experts GGUF input: "
                      "llama (Mixtral), qwen3moe)");
  if (d.arch->moe) {
    if (d.n_experts <= 0) return make_error(g.path(), ": missing ", kp, "expert_count");
    AWQ_ASSIGN(d.top_k, g.get_i64(kp + "expert_used_count"));
    if (d.top_k <= 0 || d.top_k > d.n_experts)
      return make_error(g.path(), ": ", kp, "expert_used_count = ", d.top_k, " must be in 1..",
                        d.n_experts);
    // Qwen 3-MoE: the expert width is its own key; Mixtral's experts are feed_forward_length wide.
    d.moe_inter = opt_int(g, kp + "expert_feed_forward_length").value_or(0);
    if (d.moe_inter <= 0) d.moe_inter = opt_int(g, kp + "feed_forward_length").value_or(0);
    if (auto s = opt_int(g, kp + "expert_shared_count"); s && *s > (d.arch->has_shared_expert() ? 1 : 0))
      return make_error(g.path(), ": ", kp, "expert_shared_count = ", *s,
                        ": more shared experts than the family's one are not implemented");
    if (d.arch->has_shared_expert())  // llama.cpp: feed_forward_length when the key is absent
      d.shared_inter = opt_int(g, kp + "expert_shared_feed_forward_length").value_or(d.inter);
  }
  AWQ_ASSIGN(d.eps, g.get_f32(kp + "attention.layer_norm_rms_epsilon"));
  d.rope_theta = g.has(kp + "rope.freq_base") ? *g.get_f32(kp + "rope.freq_base") : 10000.f;
  d.ctx = opt_int(g, kp + "context_length").value_or(2048);
  if (d.hidden <= 0 || d.layers <= 0 || d.n_heads <= 0 || d.n_kv_heads <= 0 || d.inter <= 0)
    return make_error(g.path(), ": ", arch, " dimensions must be positive (embedding_length ", d.hidden,
                      ", block_count ", d.layers, ", head_count ", d.n_heads, ", head_count_kv ",
                      d.n_kv_heads, ", feed_forward_length ", d.inter, ")");
  if (d.n_heads % d.n_kv_heads != 0)
    return make_error(g.path(), ": head_count ", d.n_heads, " is not a multiple of head_count_kv ",
                      d.n_kv_heads);
  d.head_dim_given = g.has(kp + "attention.key_length");
  d.head_dim = d.head_dim_given ? opt_int(g, kp + "attention.key_length").value_or(0)
                                : d.hidden / d.n_heads;
  if (d.head_dim <= 0 || d.head_dim % 2 != 0)
    return make_error(g.path(), ": head_dim ", d.head_dim, " must be positive and even for RoPE");
  if (auto v = opt_int(g, kp + "vocab_size")) {
    d.vocab = *v;
  } else if (const GGUFValue* t = g.get_array("tokenizer.ggml.tokens")) {
    d.vocab = int64_t(t->arr.size());
  } else if (const GGUFTensor* e = g.find_tensor("token_embd.weight"); e && e->ne.size() == 2) {
    d.vocab = int64_t(e->ne[1]);
  } else {
    return make_error(g.path(), ": cannot tell the vocabulary size (no ", kp, "vocab_size, "
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

// A SentencePiece vocabulary (tokenizer.ggml.model "llama"), whatever the architecture.
bool is_spm(const GGUFFile& g) {
  auto m = g.get_string("tokenizer.ggml.model");
  return m.ok() && *m == "llama";
}

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
  else if (is_spm(g))
    s.add_bos = true;  // Transformers (and llama.cpp) add BOS to a SentencePiece vocabulary
  if (!s.bos) s.add_bos = false;
  if (!s.eos) s.add_eos = false;
  return s;
}

// A SentencePiece ("llama") tokenizer in a Gemma GGUF: built as Transformers' GemmaTokenizer.
bool is_gemma_spm(const GGUFFile& g) {
  auto m = g.get_string("tokenizer.ggml.model");
  auto a = g.get_string("general.architecture");
  return m.ok() && a.ok() && *m == "llama" && (*a == "gemma3" || *a == "gemma2" || *a == "gemma");
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

// Post-processor as Transformers' update_post_processor: [bos] $A [eos], pair adds [bos] $B [eos].
ojson post_processor(const SpecialTokens& sp) {
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

  return {{"type", "TemplateProcessing"},
          {"single", single},
          {"pair", pair},
          {"special_tokens", specials}};
}

// Python's str.isspace for one code point (the characters a Gemma "whitespace token" holds).
bool py_isspace(uint32_t c) {
  return (c >= 9 && c <= 13) || (c >= 28 && c <= 32) || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F ||
         c == 0x205F || c == 0x3000;
}

std::string cps_to_utf8(const std::vector<uint32_t>& cps, size_t b, size_t e) {
  std::string out;
  for (size_t i = b; i < e; ++i) tok::utf8_append(out, cps[i]);
  return out;
}

// SentencePiece-style BPE with byte fallback, as Transformers builds Gemma's tokenizer from a
// GGUF (gguf_tokenizer_mapping.gemma_tokenizer): whitespace-only tokens holding a space are
// respelled as that many U+2581; no merges in the file, so they are recovered from the
// vocabulary: for every token in file order, each split into two vocabulary pieces, longest left
// piece first (generate_merges with score = -position); spaces become U+2581 in a normalizer;
// control tokens are special added tokens, user-defined ones that are in the vocabulary are
// plain added tokens.
// tokenizer.ggml.tokens and, when present, tokenizer.ggml.token_type (one per token).
struct GgufVocab {
  std::vector<std::string> tokens;
  std::vector<int64_t> types;  // empty when the file has none
};
Expected<GgufVocab> read_gguf_vocab(const GGUFFile& g) {
  GgufVocab v;
  AWQ_ASSIGN(v.tokens, g.get_string_array("tokenizer.ggml.tokens"));
  if (g.has("tokenizer.ggml.token_type")) {
    AWQ_ASSIGN(v.types, g.get_int_array("tokenizer.ggml.token_type"));
  }
  if (!v.types.empty() && v.types.size() != v.tokens.size())
    return make_error(g.path(), ": tokenizer.ggml.token_type has ", v.types.size(),
                      " entries, expected one per token (", v.tokens.size(), ")");
  return v;
}

// vocab: spelling -> id as a Python dict comprehension builds it ({t: i for i, t in ...}): each
// spelling at its first position, holding its last id. ordered_json's operator[] searches its
// pairs linearly (quadratic: minutes for a 262k vocabulary), so the pairs are appended to the
// ordered map's vector directly, once each.
ojson vocab_object(const std::vector<std::string>& spelled,
                   std::unordered_map<std::string, int64_t>& id_of) {
  id_of.clear();
  id_of.reserve(spelled.size() * 2);
  for (size_t i = 0; i < spelled.size(); ++i) id_of[spelled[i]] = int64_t(i);
  ojson vocab = ojson::object();
  auto& pairs = vocab.get_ref<ojson::object_t&>();
  pairs.reserve(id_of.size());
  std::unordered_map<std::string, char> placed;
  placed.reserve(spelled.size() * 2);
  for (const std::string& t : spelled)
    if (placed.emplace(t, 1).second) pairs.emplace_back(t, id_of[t]);
  return vocab;
}

// SentencePiece ("llama") vocabularies, as Transformers' GGUF loader builds them
// (gguf_tokenizer_mapping.py): Gemma (gemma_tokenizer: whitespace tokens respelled, merges
// ordered by position, no prefix space), Phi-3 (phi3_tokenizer: prefix space from a normalizer)
// and every other architecture (sentencepiece_tokenizer -> LlamaTokenizer: Metaspace with the
// prefix space on the first piece, merges ordered by tokenizer.ggml.scores).
enum class SpmFlavor { Gemma, Phi3, Llama };

SpmFlavor spm_flavor(const GGUFFile& g) {
  if (is_gemma_spm(g)) return SpmFlavor::Gemma;
  auto a = g.get_string("general.architecture");
  return a.ok() && *a == "phi3" ? SpmFlavor::Phi3 : SpmFlavor::Llama;
}

Expected<std::string> build_spm_tokenizer_json(const GGUFFile& g, SpmFlavor flavor) {
  const bool gemma = flavor == SpmFlavor::Gemma;
  AWQ_ASSIGN(GgufVocab gv, read_gguf_vocab(g));
  auto& toks = gv.tokens;
  auto& types = gv.types;
  AWQ_ASSIGN(SpecialTokens sp, special_tokens(g, toks));
  std::vector<float> scores;
  if (!gemma) {
    if (!g.has("tokenizer.ggml.scores"))
      return make_error(g.path(), ": missing tokenizer.ggml.scores (a SentencePiece vocabulary "
                                  "without merges needs them to order its merges)");
    AWQ_ASSIGN(scores, g.get_f32_array("tokenizer.ggml.scores"));
    if (scores.size() != toks.size())
      return make_error(g.path(), ": tokenizer.ggml.scores has ", scores.size(),
                        " entries, expected one per token (", toks.size(), ")");
  }
  const std::string meta = "\xE2\x96\x81";  // U+2581
  std::vector<std::string> spelled(toks.size());
  std::vector<std::vector<uint32_t>> cps(toks.size());
  for (size_t i = 0; i < toks.size(); ++i) {
    if (!decode_utf8(toks[i], cps[i]))
      return make_error(g.path(), ": tokenizer.ggml.tokens[", i, "] is not valid UTF-8");
    const bool has_space = toks[i].find(' ') != std::string::npos;
    const bool all_ws = std::all_of(cps[i].begin(), cps[i].end(), py_isspace);
    if (gemma && has_space && all_ws) {
      std::string r;
      for (size_t k = 0; k < cps[i].size(); ++k) r += meta;
      spelled[i] = r;
      decode_utf8(r, cps[i]);
    } else {
      spelled[i] = toks[i];
    }
  }
  // vocab: token -> id, the last id winning for a repeated spelling (a Python dict comprehension)
  std::unordered_map<std::string, int64_t> id_of;
  ojson vocab = vocab_object(spelled, id_of);
  // merges (generate_merges): every split of a token into two tokens, tokens by first
  // appearance, sorted by (score, len_l, len_r) descending and stable. The score of a spelling is
  // that of its last occurrence: Gemma's is minus its position (best = lowest id), the others'
  // tokenizer.ggml.scores.
  std::unordered_map<std::string, float> score_of;
  if (!gemma)
    for (size_t i = 0; i < spelled.size(); ++i) score_of[spelled[i]] = scores[i];
  struct M {
    double score;
    size_t len_l, len_r;
    size_t tok, split;
  };
  std::vector<M> merges;
  std::unordered_map<std::string, char> seen;
  seen.reserve(toks.size() * 2);
  for (size_t i = 0; i < spelled.size(); ++i) {
    if (!seen.emplace(spelled[i], 1).second) continue;
    const auto& c = cps[i];
    const double score = gemma ? -double(id_of[spelled[i]]) : double(score_of[spelled[i]]);
    for (size_t k = 1; k < c.size(); ++k) {
      if (id_of.count(cps_to_utf8(c, 0, k)) && id_of.count(cps_to_utf8(c, k, c.size())))
        merges.push_back({score, k, c.size() - k, i, k});
    }
  }
  std::stable_sort(merges.begin(), merges.end(), [](const M& a, const M& b) {
    if (a.score != b.score) return a.score > b.score;
    if (a.len_l != b.len_l) return a.len_l > b.len_l;
    return a.len_r > b.len_r;
  });
  ojson mj = ojson::array();
  for (const M& m : merges)
    mj.push_back({cps_to_utf8(cps[m.tok], 0, m.split),
                  cps_to_utf8(cps[m.tok], m.split, cps[m.tok].size())});
  std::map<int64_t, ojson> added;
  if (!gemma)  // LlamaTokenizer's own special tokens, when the vocabulary has them
    for (const char* t : {"<unk>", "<s>", "</s>"})
      if (auto it = id_of.find(t); it != id_of.end())
        added[it->second] = ojson{{"id", it->second}, {"content", t},       {"single_word", false},
                                  {"lstrip", false},  {"rstrip", false},    {"normalized", false},
                                  {"special", true}};
  for (size_t i = 0; i < types.size(); ++i) {
    const bool control = types[i] == 3;
    const bool user = types[i] == 4 && id_of.count(toks[i]);
    if (!control && !user) continue;
    auto it = id_of.find(toks[i]);
    const int64_t id = it != id_of.end() ? it->second : int64_t(i);
    if (added.count(id)) continue;
    added[id] = ojson{{"id", id},          {"content", toks[i]}, {"single_word", false},
                      {"lstrip", false},   {"rstrip", false},    {"normalized", false},
                      {"special", control}};
  }
  ojson added_list = ojson::array();
  for (auto& [id, a] : added) added_list.push_back(a);
  ojson t;
  t["version"] = "1.0";
  t["truncation"] = nullptr;
  t["padding"] = nullptr;
  t["added_tokens"] = added_list;
  const ojson replace_space = {{"type", "Replace"}, {"pattern", {{"String", " "}}}, {"content", meta}};
  ojson decoders = {{{"type", "Replace"}, {"pattern", {{"String", meta}}}, {"content", " "}},
                    {{"type", "ByteFallback"}},
                    {{"type", "Fuse"}}};
  if (gemma) {
    t["normalizer"] = replace_space;
    t["pre_tokenizer"] = {{"type", "Split"},
                          {"pattern", {{"String", " "}}},
                          {"behavior", "MergedWithPrevious"},
                          {"invert", false}};
  } else {
    decoders.push_back({{"type", "Strip"}, {"content", " "}, {"start", 1}, {"stop", 0}});
    if (flavor == SpmFlavor::Phi3) {
      t["normalizer"] = {{"type", "Sequence"},
                         {"normalizers", {{{"type", "Prepend"}, {"prepend", meta}}, replace_space}}};
      t["pre_tokenizer"] = nullptr;
    } else {
      t["normalizer"] = nullptr;
      t["pre_tokenizer"] = {{"type", "Metaspace"},
                            {"replacement", meta},
                            {"prepend_scheme", "first"},
                            {"split", false}};
    }
  }
  t["post_processor"] = post_processor(sp);
  t["decoder"] = {{"type", "Sequence"}, {"decoders", decoders}};
  t["model"] = {{"type", "BPE"},
                {"dropout", nullptr},
                {"unk_token", !gemma ? ojson(nullptr) : sp.unk ? ojson(*sp.unk) : ojson("<unk>")},
                {"continuing_subword_prefix", nullptr},
                {"end_of_word_suffix", nullptr},
                {"fuse_unk", true},
                {"byte_fallback", true},
                {"ignore_merges", false},
                {"vocab", vocab},
                {"merges", mj}};
  return t.dump(-1, ' ', false, ojson::error_handler_t::replace) + "\n";
}

}  // namespace

Expected<std::string> llama_hf_tensor_name(const std::string& n) {
  return hf_tensor_name(llama_architecture(), n);
}

Expected<std::string> hf_tensor_name(const Architecture& a, const std::string& n) {
  if (n == "token_embd.weight") return std::string("model.embed_tokens.weight");
  if (n == "output_norm.weight") return std::string("model.norm.weight");
  if (n == "output.weight") return std::string("lm_head.weight");
  if (n == "rope_freqs.weight") return std::string();  // recomputed from config by HF
  static const std::regex blk(R"(blk\.(\d+)\.(.+))");
  std::smatch m;
  if (std::regex_match(n, m, blk)) {
    const auto names = layer_names(a, true);
    auto it = names.find(m[2].str());
    if (it != names.end()) return "model.layers." + m[1].str() + "." + it->second;
  }
  return make_error("tensor \"", n, "\" has no Hugging Face ", a.name, " counterpart");
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

std::string arch_label(const GGUFFile& g) {
  auto a = g.get_string("general.architecture");
  return a.ok() ? "general.architecture \"" + *a + "\"" : std::string("this file");
}

// Which layers use the sliding window (llama_hparams::set_swa_pattern): the per-layer flags of
// attention.sliding_window_pattern, or its period n (layer l slides unless l % n == n - 1;
// n = 0: every layer), else the family's default period.
Expected<std::vector<bool>> sliding_layers(const GGUFFile& g, const std::string& kp,
                                           int64_t layers, int64_t def_period) {
  const std::string key = kp + "attention.sliding_window_pattern";
  std::vector<bool> swa(size_t(layers), false);
  int64_t n = def_period;
  if (const GGUFValue* v = g.find(key); v && v->type == GGUFValueType::ARRAY) {
    AWQ_ASSIGN(std::vector<int64_t> flags, g.get_int_array(key));
    if (int64_t(flags.size()) != layers)
      return make_error(g.path(), ": ", key, " has ", flags.size(), " entries for ", layers,
                        " layers");
    for (size_t l = 0; l < flags.size(); ++l) swa[l] = flags[l] != 0;
    return swa;
  } else if (v) {
    AWQ_ASSIGN(n, g.get_i64(key));
    if (n < 0) return make_error(g.path(), ": ", key, " = ", n, " must be >= 0");
  }
  for (int64_t l = 0; l < layers; ++l) swa[size_t(l)] = n == 0 || l % n < n - 1;
  return swa;
}

// Llama 3.1+ RoPE scaling: llama.cpp's converter writes no rope.scaling.* keys for it, only the
// per-dimension factors it computed from (factor, low_freq_factor, high_freq_factor,
// original_max_position_embeddings) as the tensor rope_freqs.weight (conversion/llama.py). The HF
// config needs the four numbers: find the ones that give back every stored factor (factor = the
// largest; the Llama 3.x values 1 / 4 for the frequency factors, or a few others; the original
// length a power of two or the file's context length). No match: refused, naming the tensor.
struct Llama3Rope {
  double factor, low, high;
  int64_t original;
};

Expected<std::optional<Llama3Rope>> llama3_rope_from_factors(const GGUFFile& g, const LlamaDims& d) {
  const GGUFTensor* t = g.find_tensor("rope_freqs.weight");
  if (!t) return std::optional<Llama3Rope>();
  AWQ_ASSIGN(std::vector<float> f, g.dequantize(*t));
  const int64_t dim = d.head_dim;
  if (int64_t(f.size()) != dim / 2)
    return make_error(g.path(), ": tensor \"rope_freqs.weight\" has ", f.size(),
                      " entries, expected head_dim / 2 = ", dim / 2);
  if (std::all_of(f.begin(), f.end(), [](float x) { return x == 1.0f; }))
    return std::optional<Llama3Rope>();
  const double factor = *std::max_element(f.begin(), f.end());
  std::vector<int64_t> originals;
  for (int k = 4; k <= 20; ++k) originals.push_back(int64_t(1) << k);
  originals.push_back(d.ctx);
  for (double low : {1.0, 0.5, 2.0})
    for (double high : {4.0, 2.0, 8.0, 1.0})
      for (int64_t orig : originals) {
        if (high <= low) continue;
        const double low_wl = double(orig) / low, high_wl = double(orig) / high;
        bool ok = true;
        for (int64_t i = 0; i < dim / 2 && ok; ++i) {
          // freqs as torch float32: base ** (arange(0, dim, 2) / dim), then 1 / that
          const float expo = float(2 * i) / float(dim);
          const float freq = 1.0f / std::pow(d.rope_theta, expo);
          const double wl = 2 * M_PI / double(freq);
          double want;
          if (wl < high_wl) want = 1.0;
          else if (wl > low_wl) want = factor;
          else {
            const double smooth = (double(orig) / wl - low) / (high - low);
            want = 1.0 / ((1.0 - smooth) / factor + smooth);
          }
          ok = std::fabs(double(f[size_t(i)]) - want) <= 1e-6 * std::max(1.0, want);
        }
        if (ok) return std::optional<Llama3Rope>(Llama3Rope{factor, low, high, orig});
      }
  return make_error(g.path(), ": tensor \"rope_freqs.weight\" holds per-dimension RoPE factors "
                    "that are not Llama 3 rope scaling for any known setting; not converted");
}

Expected<std::string> build_config_json(const GGUFFile& g, DType dtype) {
  AWQ_ASSIGN(LlamaDims d, llama_dims(g));
  const Architecture& a = *d.arch;
  const std::string& kp = d.kp;
  ojson c;
  c["architectures"] = {a.name};
  c["model_type"] = a.model_type;
  c["hidden_size"] = d.hidden;
  c["intermediate_size"] = d.inter;
  c["num_hidden_layers"] = d.layers;
  c["num_attention_heads"] = d.n_heads;
  c["num_key_value_heads"] = d.n_kv_heads;
  if (d.head_dim_given) c["head_dim"] = d.head_dim;
  if (a.norm == NormKind::RmsPlusOne) {
    // Gemma 2 / 3, as llama.cpp runs them (src/models/gemma2.cpp, gemma3.cpp) where the file is
    // silent: GELU-tanh; sliding layers from attention.sliding_window_pattern, else every 2nd
    // (Gemma 2) or 6th (Gemma 3) layer global; query scale head_dim^-1/2 (Gemma 2 27B, 46
    // layers: (hidden / heads)^-1/2); Gemma 3's local RoPE base 10000 unless rope.freq_base_swa.
    const bool g2 = a.model_type == "gemma2";
    c["hidden_activation"] = "gelu_pytorch_tanh";
    c["query_pre_attn_scalar"] = g2 && d.layers == 46 ? d.hidden / d.n_heads : d.head_dim;
    if (!g2) {
      c["rope_local_base_freq"] =
          g.has(kp + "rope.freq_base_swa") ? double(*g.get_f32(kp + "rope.freq_base_swa")) : 10000.0;
    }
    auto w = opt_int(g, kp + "attention.sliding_window");
    if (!w && g2) w = 4096;  // llama.cpp's Gemma 2 default
    AWQ_ASSIGN(std::vector<bool> swa, sliding_layers(g, kp, d.layers, g2 ? 2 : 6));
    ojson types = ojson::array();
    for (int64_t l = 0; l < d.layers; ++l)
      types.push_back(w && *w > 0 && swa[size_t(l)] ? "sliding_attention" : "full_attention");
    c["sliding_window"] = w && *w > 0 ? ojson(*w) : ojson(nullptr);
    c["layer_types"] = types;
    auto cap = [&](const char* key, double def) -> ojson {
      if (!g.has(kp + key)) return def > 0 ? ojson(def) : ojson(nullptr);
      const float v = *g.get_f32(kp + key);
      return v > 0 ? ojson(double(v)) : ojson(nullptr);
    };
    c["final_logit_softcapping"] = cap("final_logit_softcapping", g2 ? 30.0 : 0.0);
    c["attn_logit_softcapping"] = g2 ? cap("attn_logit_softcapping", 50.0) : ojson(nullptr);
  } else {
    c["hidden_act"] = "silu";
  }
  // Partial rotary: Phi-3's rope.dimension_count < head_dim; other families rotate whole heads.
  if (auto rd = opt_int(g, kp + "rope.dimension_count"); rd && *rd != d.head_dim) {
    if (a.model_type != "phi3" || *rd <= 0 || *rd > d.head_dim || *rd % 2)
      return make_error(g.path(), ": ", kp, "rope.dimension_count = ", *rd, " with head_dim ",
                        d.head_dim, ": partial rotary is not implemented for ", arch_label(g));
    c["partial_rotary_factor"] = double(*rd) / double(d.head_dim);
  }
  if (a.model_type == "phi3") {
    auto w = opt_int(g, kp + "attention.sliding_window");
    // Written by the converter from the HF config; llama.cpp itself currently runs Phi-3 without
    // it (src/models/phi3.cpp), Transformers with it: the HF directory keeps the model's own.
    c["sliding_window"] = w && *w > 0 ? ojson(*w) : ojson(nullptr);
    if (auto o = opt_int(g, kp + "rope.scaling.original_context_length"))
      c["original_max_position_embeddings"] = *o;
  }
  if (a.moe) {
    c["num_experts_per_tok"] = d.top_k;
    if (a.model_type == "mixtral") {
      c["num_local_experts"] = d.n_experts;
      c["intermediate_size"] = d.moe_inter;
      c["sliding_window"] = nullptr;
    } else {  // llama.cpp always renormalises the top-k weights of qwen3moe, never of qwen2moe
      c["num_experts"] = d.n_experts;
      c["moe_intermediate_size"] = d.moe_inter;
      c["norm_topk_prob"] = a.model_type == "qwen3_moe";
      if (a.has_shared_expert()) c["shared_expert_intermediate_size"] = d.shared_inter;
      c["decoder_sparse_step"] = 1;
      c["mlp_only_layers"] = ojson::array();
    }
  }
  if (a.model_type == "qwen2" || a.model_type == "qwen3" || a.model_type == "qwen3_moe" ||
      a.model_type == "qwen2_moe")
    c["use_sliding_window"] = false;
  c["rms_norm_eps"] = double(d.eps);
  c["rope_theta"] = double(d.rope_theta);
  c["max_position_embeddings"] = d.ctx;
  c["vocab_size"] = d.vocab;
  c["tie_word_embeddings"] = g.find_tensor("output.weight") == nullptr;
  c["attention_bias"] = a.qkv_bias;
  c["mlp_bias"] = false;
  c["bos_token_id"] = opt_json(opt_int(g, "tokenizer.ggml.bos_token_id"));
  c["eos_token_id"] = opt_json(opt_int(g, "tokenizer.ggml.eos_token_id"));
  if (auto p = opt_int(g, "tokenizer.ggml.padding_token_id")) c["pad_token_id"] = *p;
  if (g.has(kp + "rope.scaling.type")) {
    AWQ_ASSIGN(std::string t, g.get_string(kp + "rope.scaling.type"));
    if (t != "none") {
      ojson rs;
      rs["rope_type"] = t;
      rs["type"] = t;
      if (g.has(kp + "rope.scaling.factor"))
        rs["factor"] = double(*g.get_f32(kp + "rope.scaling.factor"));
      if (auto o = opt_int(g, kp + "rope.scaling.original_context_length"))
        rs["original_max_position_embeddings"] = *o;
      c["rope_scaling"] = rs;
    }
  } else if (auto l3 = llama3_rope_from_factors(g, d); !l3) {
    return l3.error();
  } else if (l3->has_value()) {
    const Llama3Rope& r = **l3;
    c["rope_scaling"] = {{"rope_type", "llama3"},
                         {"factor", r.factor},
                         {"low_freq_factor", r.low},
                         {"high_freq_factor", r.high},
                         {"original_max_position_embeddings", r.original}};
  } else if (g.has(kp + "rope.scale_linear")) {
    c["rope_scaling"] = {{"rope_type", "linear"},
                         {"type", "linear"},
                         {"factor", double(*g.get_f32(kp + "rope.scale_linear"))}};
  }
  c["torch_dtype"] = dtype == DType::F32 ? "float32" : dtype == DType::F16 ? "float16" : "bfloat16";
  return dump(c);
}

Expected<std::string> build_tokenizer_json(const GGUFFile& g) {
  if (is_spm(g)) return build_spm_tokenizer_json(g, spm_flavor(g));
  AWQ_TRY(check_gpt2_tokenizer(g));
  AWQ_ASSIGN(GgufVocab gv, read_gguf_vocab(g));
  auto& toks = gv.tokens;
  auto& types = gv.types;
  std::vector<std::string> merges;
  if (g.has("tokenizer.ggml.merges")) {
    AWQ_ASSIGN(merges, g.get_string_array("tokenizer.ggml.merges"));
  }
  AWQ_ASSIGN(SpecialTokens sp, special_tokens(g, toks));

  std::vector<std::string> spelled(toks.size());
  for (size_t i = 0; i < toks.size(); ++i) spelled[i] = byte_level_spelling(toks[i]);
  std::unordered_map<std::string, int64_t> id_of;
  ojson vocab = vocab_object(spelled, id_of);
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
    const auto found = id_of.find(toks[i]);
    const bool user = types[i] == 4 && found != id_of.end();
    if ((!control && !user) || found == id_of.end()) continue;
    const int64_t id = found->second;
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

  const ojson post = post_processor(sp);

  ojson t;
  t["version"] = "1.0";
  t["truncation"] = nullptr;
  t["padding"] = nullptr;
  t["added_tokens"] = added_list;
  t["normalizer"] = nullptr;
  t["pre_tokenizer"] = pre_tok;
  t["post_processor"] = post;
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
  if (!is_spm(g)) AWQ_TRY(check_gpt2_tokenizer(g));
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
  std::string kp = "llama.";
  if (g.has("general.architecture")) kp = *g.get_string("general.architecture") + ".";
  c["model_max_length"] = opt_int(g, kp + "context_length").value_or(2048);
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
    std::string hf;      // the HF tensor; for stacked experts "model.layers.N.<experts>" (prefix)
    std::string expert;  // stacked experts: the module in each expert ("w1"), else empty
  };
  std::vector<Job> jobs;
  std::set<std::string> have;
  const Architecture& a = *d.arch;
  static const std::regex blk_re(R"(blk\.(\d+)\.(.+))");
  for (const auto& t : g.tensors()) {
    if (t.name == "rope_factors_long.weight" || t.name == "rope_factors_short.weight")
      return make_error(gguf_path, ": tensor \"", t.name, "\": LongRoPE scaling (Phi-3 128k, "
                        "Phi-4-mini) is not implemented");
    std::smatch m;
    std::string expert;
    if (a.moe && std::regex_match(t.name, m, blk_re)) expert = expert_module(a, m[2].str());
    Expected<std::string> hf = std::string();
    if (!expert.empty()) {
      hf = "model.layers." + m[1].str() + "." + a.moe_names.experts;
      have.insert(t.name);
    } else {
      hf = hf_tensor_name(a, t.name);
      if (!hf.ok()) return make_error(gguf_path, ": ", hf.error().message);
      if (hf->empty()) continue;
      have.insert(*hf);
    }
    if (!ggml_can_dequantize(t.type))
      return make_error(gguf_path, ": tensor \"", t.name, "\" has type ", ggml_type_name(t.type),
                        ", which cannot be dequantized (supported: F32, F16, BF16, Q8_0, Q4_0, "
                        "Q4_1, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K)");
    if (t.ne.size() > (expert.empty() ? 2u : 3u))
      return make_error(gguf_path, ": tensor \"", t.name, "\" has ", t.ne.size(),
                        " dims, expected ", expert.empty() ? "1 or 2" : "3");
    jobs.push_back({&t, *hf, expert});
  }
  auto shape_of = [&](const std::string& hf) -> std::vector<int64_t> {
    const int64_t q = d.n_heads * d.head_dim, kv = d.n_kv_heads * d.head_dim;
    if (hf == "model.embed_tokens.weight" || hf == "lm_head.weight") return {d.vocab, d.hidden};
    if (hf == "model.norm.weight") return {d.hidden};
    auto ends = [&](const char* s) { return hf.size() >= strlen(s) && hf.ends_with(s); };
    if (a.has_shared_expert()) {  // before the dense names: its modules end the same way
      if (ends("shared_expert_gate.weight")) return {1, d.hidden};
      if (hf.find(".shared_expert.") != std::string::npos)
        return ends("down_proj.weight") ? std::vector<int64_t>{d.hidden, d.shared_inter}
                                        : std::vector<int64_t>{d.shared_inter, d.hidden};
    }
    if (ends("q_norm.weight") || ends("k_norm.weight")) return {d.head_dim};
    if (ends("layernorm.weight")) return {d.hidden};
    if (ends("q_proj.bias")) return {q};
    if (ends("k_proj.bias") || ends("v_proj.bias")) return {kv};
    if (ends("q_proj.weight")) return {q, d.hidden};
    if (ends("qkv_proj.weight")) return {q + 2 * kv, d.hidden};
    if (ends("gate_up_proj.weight")) return {2 * d.inter, d.hidden};
    if (a.moe && ends((a.moe_names.router + ".weight").c_str())) return {d.n_experts, d.hidden};
    if (ends("k_proj.weight") || ends("v_proj.weight")) return {kv, d.hidden};
    if (ends("o_proj.weight")) return {d.hidden, q};
    if (ends("gate_proj.weight") || ends("up_proj.weight")) return {d.inter, d.hidden};
    if (ends("down_proj.weight")) return {d.hidden, d.inter};
    return {};
  };
  std::vector<std::string> required = {"model.embed_tokens.weight", "model.norm.weight"};
  for (int64_t l = 0; l < d.layers; ++l)
    for (const auto& [k, v] : layer_names(a, false))
      required.push_back("model.layers." + std::to_string(l) + "." + v);
  if (a.qkv_bias)
    for (int64_t l = 0; l < d.layers; ++l)
      for (const char* p : {"q_proj", "k_proj", "v_proj"})
        required.push_back("model.layers." + std::to_string(l) + ".self_attn." + p + ".bias");
  if (a.moe)
    for (int64_t l = 0; l < d.layers; ++l)
      for (const std::string* st : {&a.moe_names.gguf_gate, &a.moe_names.gguf_up, &a.moe_names.gguf_down})
        required.push_back("blk." + std::to_string(l) + "." + *st + ".weight");
  for (const auto& r : required)
    if (!have.count(r))
      return make_error(gguf_path, ": missing tensor for ", r, " (", d.layers, " layers expected)");
  for (const auto& j : jobs) {
    const bool down = j.expert == a.moe_names.down;
    const auto want = j.expert.empty() ? shape_of(j.hf)
                      : down ? std::vector<int64_t>{d.n_experts, d.hidden, d.moe_inter}
                             : std::vector<int64_t>{d.n_experts, d.moe_inter, d.hidden};
    // llama.cpp declares the shared expert's gate 1-D ({n_embd}); HF holds it [1, hidden]
    const bool gate_1d = j.t->shape() == std::vector<int64_t>{d.hidden} &&
                         want == std::vector<int64_t>{1, d.hidden};
    if (j.t->shape() != want && !gate_1d) {
      std::string w, got;
      for (auto x : want) w += std::to_string(x) + " ";
      for (auto x : j.t->shape()) got += std::to_string(x) + " ";
      return make_error(gguf_path, ": tensor \"", j.t->name, "\" (", j.hf, ") has shape [ ", got,
                        "], expected [ ", w, "] from the ", d.kp, "* metadata");
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
      auto shape = j.t->shape();
      if (shape.size() == 1 && j.hf.ends_with("shared_expert_gate.weight")) shape = {1, shape[0]};
      if (!j.expert.empty()) {  // [experts, rows, cols] -> one [rows, cols] tensor per expert
        const size_t per = size_t(shape[1] * shape[2]);
        for (int64_t e = 0; e < shape[0]; ++e)
          AWQ_TRY(w.add_f32(j.hf + std::to_string(e) + "." + j.expert + ".weight", opts.dtype,
                            {shape[1], shape[2]}, v.data() + size_t(e) * per));
        continue;
      }
      const bool is_q = j.hf.ends_with("q_proj.weight"), is_k = j.hf.ends_with("k_proj.weight");
      if (a.gguf_norm_plus_one && j.hf.ends_with("norm.weight"))
        for (auto& x : v) x -= 1.0f;  // llama.cpp stores Gemma's (1 + w); HF keeps w
      if (a.gguf_permuted_qk && (is_q || is_k)) {
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
