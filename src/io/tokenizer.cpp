// Tokenizer: loading tokenizer.json (+ tokenizer_config.json, generation_config.json) and
// the encode/decode pipeline. The stages live in tokenizer_pipeline.cpp, the BPE merge loop
// in tokenizer_bpe.cpp, UTF-8 / ByteLevel / regex helpers in tokenizer_text.cpp.
#include "io/tokenizer.h"

#include <algorithm>
#include <filesystem>
#include <unordered_map>

#include "core/mmap_file.h"
#include "io/tokenizer_bpe.h"
#include "io/tokenizer_pipeline.h"
#include "io/tokenizer_text.h"

namespace awq {
namespace tok {

struct AddedToken {
  std::string content;
  std::string match;  // the form searched for: content, normalized if `normalized`
  int32_t id = -1;
  bool special = false, lstrip = false, rstrip = false, single_word = false, normalized = false;
};

// Leftmost-longest matcher over a set of added tokens (HF uses Aho-Corasick with the same
// match kind; the sets are small, so a first-byte bucket scan is enough).
class AddedMatcher {
 public:
  void add(const AddedToken* t) {
    if (t->match.empty()) return;
    by_first_[static_cast<unsigned char>(t->match[0])].push_back(t);
    any_ = true;
  }
  // After the last add(): longest first within a bucket, file order among equal lengths (one
  // sort per bucket; sorting on every add was quadratic for Gemma's 6k "<unused..>" tokens).
  void finish() {
    for (auto& b : by_first_)
      std::stable_sort(b.begin(), b.end(),
                       [](auto* x, auto* y) { return x->match.size() > y->match.size(); });
  }
  bool empty() const { return !any_; }
  // Next match at or after `from`: returns the token and sets *pos, or nullptr.
  const AddedToken* next(std::string_view s, size_t from, size_t* pos) const {
    for (size_t i = from; i < s.size(); ++i) {
      const auto& b = by_first_[static_cast<unsigned char>(s[i])];
      for (const AddedToken* t : b)
        if (s.compare(i, t->match.size(), t->match) == 0) {
          *pos = i;
          return t;
        }
    }
    return nullptr;
  }

 private:
  std::vector<const AddedToken*> by_first_[256];
  bool any_ = false;
};

struct TokenizerImpl {
  std::string file;  // tokenizer.json path, for messages
  BpeModel model;
  std::vector<AddedToken> added;                     // in file order
  std::unordered_map<int32_t, size_t> added_by_id;   // id -> index in `added`
  std::unordered_map<std::string, int32_t> added_by_content;
  AddedMatcher raw_matcher, norm_matcher;  // non-normalized / normalized added tokens
  std::unique_ptr<Normalizer> normalizer;
  std::unique_ptr<PreTokenizer> pre_tokenizer;
  std::unique_ptr<PostProcessor> post_processor;
  std::unique_ptr<Decoder> decoder;
  Regex space_char, word_char;  // \s and \w for added-token lstrip/rstrip/single_word

  int32_t bos = -1, eos = -1;
  std::vector<int32_t> eos_list;
  size_t vocab_size = 0;
  std::string chat_template;

  struct Segment {
    size_t b, e;
    int32_t id;  // added token id, or -1 for text still to tokenize
  };
  void split_added(std::string_view s, const AddedMatcher& m, std::vector<Segment>& out) const;
  bool is_char(const Regex& re, std::string_view s, bool last) const;
  void encode_text(std::string_view piece, bool at_origin, std::vector<int32_t>& ids,
                   std::unordered_map<std::string, std::vector<int32_t>>& cache) const;
  const std::string* id_to_token(int32_t id) const {
    if (auto it = added_by_id.find(id); it != added_by_id.end()) return &added[it->second].content;
    return model.id_to_token(id);
  }
};

// Does the first (last) character of s match the single-character regex `re`?
bool TokenizerImpl::is_char(const Regex& re, std::string_view s, bool last) const {
  if (s.empty()) return false;
  size_t b = 0, e = s.size();
  if (last) {
    b = e - 1;
    while (b > 0 && (static_cast<unsigned char>(s[b]) & 0xC0) == 0x80) --b;
  } else {
    e = 1;
    while (e < s.size() && (static_cast<unsigned char>(s[e]) & 0xC0) == 0x80) ++e;
  }
  return re.search(s.substr(b, e - b));
}

// HF AddedVocabulary::find_matches.
void TokenizerImpl::split_added(std::string_view s, const AddedMatcher& m,
                                std::vector<Segment>& out) const {
  size_t start_offset = 0, from = 0, pos = 0;
  while (const AddedToken* t = m.next(s, from, &pos)) {
    size_t start = pos, stop = pos + t->match.size();
    from = stop;  // the search goes on after the match itself, not after what rstrip took
    if (t->single_word) {
      const bool space_before = start == 0 || !is_char(word_char, s.substr(0, start), true);
      const bool space_after = stop == s.size() || !is_char(word_char, s.substr(stop), false);
      if (!space_before || !space_after) continue;
    }
    if (t->lstrip) {
      size_t ns = start;
      while (ns > start_offset && is_char(space_char, s.substr(0, ns), true)) {
        --ns;
        while (ns > 0 && (static_cast<unsigned char>(s[ns]) & 0xC0) == 0x80) --ns;
      }
      start = ns;
    }
    if (t->rstrip) {
      while (stop < s.size() && is_char(space_char, s.substr(stop), false)) {
        ++stop;
        while (stop < s.size() && (static_cast<unsigned char>(s[stop]) & 0xC0) == 0x80) ++stop;
      }
    }
    if (start_offset < start) out.push_back({start_offset, start, -1});
    // A match may start inside whitespace an rstrip already took: HF still emits it.
    out.push_back({std::max(start, start_offset), std::max(stop, start_offset), t->id});
    start_offset = std::max(start_offset, stop);
  }
  if (start_offset < s.size()) out.push_back({start_offset, s.size(), -1});
}

void TokenizerImpl::encode_text(std::string_view text, bool at_origin, std::vector<int32_t>& ids,
                                std::unordered_map<std::string, std::vector<int32_t>>& cache) const {
  std::vector<Piece> pieces;
  pieces.push_back({std::string(text), at_origin});
  if (pre_tokenizer) pre_tokenizer->split(pieces);
  for (const Piece& p : pieces) {
    if (p.text.size() > 256) {  // long words: not worth caching
      model.tokenize(p.text, ids);
      continue;
    }
    auto it = cache.find(p.text);
    if (it == cache.end()) {
      std::vector<int32_t> word;
      model.tokenize(p.text, word);
      it = cache.emplace(p.text, std::move(word)).first;
    }
    ids.insert(ids.end(), it->second.begin(), it->second.end());
  }
}

// ---- loading ------------------------------------------------------------------------------

namespace {

Expected<json> parse_json_file(const std::string& path) {
  AWQ_ASSIGN(std::string text, read_text_file(path));
  try {
    return json::parse(text);
  } catch (const json::parse_error& e) {
    return make_error(path, ": invalid JSON: ", e.what());
  }
}

// "bos_token": "<s>" or {"content": "<s>", ...} or null.
std::string config_token(const json& cfg, const char* key) {
  auto it = cfg.find(key);
  if (it == cfg.end()) return "";
  if (it->is_string()) return it->get<std::string>();
  if (it->is_object() && it->contains("content") && (*it)["content"].is_string())
    return (*it)["content"].get<std::string>();
  return "";
}

Expected<BpeModel> parse_model(const json& root, const JsonPath& top) {
  const JsonPath at = top.field("model");
  auto mit = root.find("model");
  if (mit == root.end() || mit->is_null()) return at.error("missing (expected a BPE model object)");
  const json& m = *mit;
  if (!m.is_object()) return at.type_error(m, "an object");
  if (m.contains("type") || !m.contains("merges")) {
    AWQ_ASSIGN(std::string type, get_string(m, at, "type"));
    if (type != "BPE")
      return make_error(top.file, ": model.type \"", type, "\" is not supported (supported: BPE)");
  }
  for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"}) {
    AWQ_ASSIGN(std::string v, get_string(m, at, key, ""));
    if (!v.empty())
      return at.field(key).error("\"" + v + "\" is not supported (only \"\" or null)");
  }
  if (auto it = m.find("dropout"); it != m.end() && !it->is_null()) {
    if (!it->is_number()) return at.field("dropout").type_error(*it, "a number or null");
    if (it->get<double>() != 0.0) return at.field("dropout").error("BPE dropout is not supported");
  }
  BpeModel::Options opt;
  AWQ_ASSIGN(opt.byte_fallback, get_bool(m, at, "byte_fallback", false));
  AWQ_ASSIGN(opt.ignore_merges, get_bool(m, at, "ignore_merges", false));
  AWQ_ASSIGN(opt.fuse_unk, get_bool(m, at, "fuse_unk", false));
  AWQ_ASSIGN(opt.unk_token, get_string(m, at, "unk_token", ""));

  auto vit = m.find("vocab");
  if (vit == m.end()) return at.field("vocab").error("missing (expected an object token -> id)");
  if (!vit->is_object()) return at.field("vocab").type_error(*vit, "an object token -> id");
  Vocab vocab;
  vocab.reserve(vit->size());
  for (auto& [tok, id] : vit->items()) {
    if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<int64_t>() > INT32_MAX)
      return make_error(top.file, ": model.vocab[\"", tok, "\"]: expected an id in [0, 2^31), got ",
                        id.dump());
    vocab.emplace(tok, id.get<int32_t>());
  }

  auto rit = m.find("merges");
  if (rit == m.end()) return at.field("merges").error("missing (expected an array)");
  if (!rit->is_array()) return at.field("merges").type_error(*rit, "an array");
  std::vector<std::pair<std::string, std::string>> merges;
  merges.reserve(rit->size());
  for (size_t i = 0; i < rit->size(); ++i) {
    const json& e = (*rit)[i];
    if (e.is_string()) {
      const std::string& s = e.get_ref<const std::string&>();
      const size_t sp = s.find(' ');
      if (sp == std::string::npos || s.find(' ', sp + 1) != std::string::npos || sp == 0 ||
          sp + 1 == s.size())
        return at.field("merges").index(i).error("expected \"left right\" (two tokens separated "
                                                 "by one space), got \"" + s + "\"");
      merges.emplace_back(s.substr(0, sp), s.substr(sp + 1));
    } else if (e.is_array() && e.size() == 2 && e[0].is_string() && e[1].is_string()) {
      merges.emplace_back(e[0].get<std::string>(), e[1].get<std::string>());
    } else {
      return at.field("merges").index(i).error("expected \"left right\" or [\"left\", \"right\"], got " +
                                               e.dump());
    }
  }
  return BpeModel::build(std::move(vocab), merges, std::move(opt), top.file);
}

}  // namespace

Expected<std::shared_ptr<TokenizerImpl>> load_impl(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  std::string file = path, dir;
  if (fs::is_directory(path, ec)) {
    file = (fs::path(path) / "tokenizer.json").string();
    dir = path;
  } else {
    dir = fs::path(path).parent_path().string();
    if (dir.empty()) dir = ".";
  }
  if (!fs::exists(file, ec))
    return make_error(file, ": not found (expected a HF tokenizer.json or a directory holding one)");

  auto impl = std::make_shared<TokenizerImpl>();
  impl->file = file;
  AWQ_ASSIGN(json root, parse_json_file(file));
  const JsonPath top{impl->file, ""};
  if (!root.is_object()) return make_error(file, ": expected a JSON object, got ", root.type_name());
  AWQ_ASSIGN(impl->model, parse_model(root, top));

  // added_tokens
  if (auto it = root.find("added_tokens"); it != root.end() && !it->is_null()) {
    if (!it->is_array()) return top.field("added_tokens").type_error(*it, "an array");
    for (size_t i = 0; i < it->size(); ++i) {
      const json& a = (*it)[i];
      const JsonPath at = top.field("added_tokens").index(i);
      if (!a.is_object()) return at.type_error(a, "an object");
      AddedToken t;
      AWQ_ASSIGN(int64_t id, get_int(a, at, "id", -1));
      if (id < 0 || id > INT32_MAX) return at.field("id").error("missing or out of range");
      t.id = int32_t(id);
      AWQ_ASSIGN(t.content, get_string(a, at, "content"));
      AWQ_ASSIGN(t.special, get_bool(a, at, "special", false));
      AWQ_ASSIGN(t.lstrip, get_bool(a, at, "lstrip", false));
      AWQ_ASSIGN(t.rstrip, get_bool(a, at, "rstrip", false));
      AWQ_ASSIGN(t.single_word, get_bool(a, at, "single_word", false));
      AWQ_ASSIGN(t.normalized, get_bool(a, at, "normalized", !t.special));
      impl->added.push_back(std::move(t));
    }
  }

  AWQ_ASSIGN(impl->normalizer,
             parse_normalizer(root.value("normalizer", json()), top.field("normalizer")));
  AWQ_ASSIGN(impl->pre_tokenizer,
             parse_pre_tokenizer(root.value("pre_tokenizer", json()), top.field("pre_tokenizer")));
  AWQ_ASSIGN(impl->post_processor, parse_post_processor(root.value("post_processor", json()),
                                                        top.field("post_processor")));
  AWQ_ASSIGN(impl->decoder, parse_decoder(root.value("decoder", json()), top.field("decoder")));
  AWQ_ASSIGN(impl->space_char, Regex::compile("^\\s$"));
  AWQ_ASSIGN(impl->word_char, Regex::compile("^\\w$"));

  // Index the added tokens. Normalized ones are matched against normalized text, so their
  // content is normalized too (as HF does).
  size_t max_id = impl->model.size();
  for (size_t i = 0; i < impl->added.size(); ++i) {
    AddedToken& t = impl->added[i];
    impl->added_by_id[t.id] = i;
    impl->added_by_content.emplace(t.content, t.id);
    max_id = std::max(max_id, size_t(t.id) + 1);
  }
  for (AddedToken& t : impl->added) {
    t.match = t.content;
    if (t.normalized && impl->normalizer) impl->normalizer->normalize(t.match);
  }
  for (const AddedToken& t : impl->added)
    (t.normalized ? impl->norm_matcher : impl->raw_matcher).add(&t);
  impl->norm_matcher.finish();
  impl->raw_matcher.finish();
  impl->vocab_size = max_id;
  return impl;
}

}  // namespace tok

// ---- Tokenizer ----------------------------------------------------------------------------

Expected<Tokenizer> Tokenizer::load(const std::string& path) {
  namespace fs = std::filesystem;
  AWQ_ASSIGN(std::shared_ptr<tok::TokenizerImpl> impl, tok::load_impl(path));
  Tokenizer t;
  t.impl_ = impl;  // lookups below go through the public API

  const fs::path dir = fs::path(impl->file).parent_path();
  std::error_code ec;
  // tokenizer_config.json: bos/eos names and the chat template.
  const std::string cfg_path = (dir / "tokenizer_config.json").string();
  std::string bos_name, eos_name;
  if (fs::exists(cfg_path, ec)) {
    AWQ_ASSIGN(tok::json cfg, tok::parse_json_file(cfg_path));
    if (!cfg.is_object())
      return make_error(cfg_path, ": expected a JSON object, got ", cfg.type_name());
    bos_name = tok::config_token(cfg, "bos_token");
    eos_name = tok::config_token(cfg, "eos_token");
    if (auto it = cfg.find("chat_template"); it != cfg.end()) {
      if (it->is_string()) {
        impl->chat_template = it->get<std::string>();
      } else if (it->is_array()) {  // [{"name": "default", "template": "..."}, ...]
        for (const auto& e : *it)
          if (e.is_object() && e.value("name", "") == "default" && e.contains("template") &&
              e["template"].is_string())
            impl->chat_template = e["template"].get<std::string>();
      }
    }
  }
  const std::string jinja_path = (dir / "chat_template.jinja").string();
  if (impl->chat_template.empty() && fs::exists(jinja_path, ec)) {
    AWQ_ASSIGN(impl->chat_template, read_text_file(jinja_path));
  }
  if (!bos_name.empty()) impl->bos = t.token_to_id(bos_name);
  if (!eos_name.empty()) impl->eos = t.token_to_id(eos_name);

  // generation_config.json: bos_token_id, eos_token_id (int or list).
  const std::string gen_path = (dir / "generation_config.json").string();
  if (fs::exists(gen_path, ec)) {
    AWQ_ASSIGN(tok::json gen, tok::parse_json_file(gen_path));
    if (!gen.is_object())
      return make_error(gen_path, ": expected a JSON object, got ", gen.type_name());
    if (auto it = gen.find("bos_token_id"); impl->bos < 0 && it != gen.end() &&
                                            it->is_number_integer())
      impl->bos = it->get<int32_t>();
    if (auto it = gen.find("eos_token_id"); it != gen.end()) {
      if (it->is_number_integer()) impl->eos_list.push_back(it->get<int32_t>());
      if (it->is_array())
        for (const auto& e : *it)
          if (e.is_number_integer()) impl->eos_list.push_back(e.get<int32_t>());
    }
  }
  // Fallbacks: BOS from the post-processor template, EOS from well-known special tokens.
  if (impl->bos < 0) {
    auto prefix = tok::post_processor_prefix(impl->post_processor.get());
    if (!prefix.empty()) impl->bos = prefix[0];
  }
  if (impl->eos < 0 && !impl->eos_list.empty()) impl->eos = impl->eos_list[0];
  if (impl->eos < 0)
    for (const char* name : {"</s>", "<|end_of_text|>", "<|endoftext|>", "<eos>"})
      if (auto it = impl->added_by_content.find(name); it != impl->added_by_content.end()) {
        impl->eos = it->second;
        break;
      }
  // End-of-generation set: eos, the generation config list, and end-of-turn specials.
  std::vector<int32_t> eog;
  if (impl->eos >= 0) eog.push_back(impl->eos);
  eog.insert(eog.end(), impl->eos_list.begin(), impl->eos_list.end());
  for (const char* name : {"<|im_end|>", "<|eot_id|>", "<|eom_id|>", "<|end|>", "<end_of_turn>",
                           "<|endoftext|>", "<|end_of_text|>", "</s>", "<eos>"})
    if (auto it = impl->added_by_content.find(name); it != impl->added_by_content.end() &&
                                                     impl->added[impl->added_by_id[it->second]].special)
      eog.push_back(it->second);
  std::vector<int32_t> uniq;
  for (int32_t id : eog)
    if (id >= 0 && std::find(uniq.begin(), uniq.end(), id) == uniq.end()) uniq.push_back(id);
  impl->eos_list = std::move(uniq);
  return t;
}

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool add_special) const {
  const tok::TokenizerImpl& im = *impl_;
  std::string repaired;
  if (!tok::utf8_valid(text)) {
    repaired = tok::utf8_lossy(text);
    text = repaired;
  }
  std::vector<int32_t> ids;
  ids.reserve(text.size() / 3 + 4);
  std::unordered_map<std::string, std::vector<int32_t>> cache;
  std::vector<tok::TokenizerImpl::Segment> outer, inner;
  // 1. added tokens matched on the raw text
  im.split_added(text, im.raw_matcher, outer);
  std::string normalized;
  for (const auto& seg : outer) {
    if (seg.id >= 0) {
      ids.push_back(seg.id);
      continue;
    }
    // 2. normalize each remaining piece, then match the normalized added tokens in it
    normalized.assign(text.substr(seg.b, seg.e - seg.b));
    if (im.normalizer) im.normalizer->normalize(normalized);
    inner.clear();
    im.split_added(normalized, im.norm_matcher, inner);
    for (const auto& s2 : inner) {
      if (s2.id >= 0)
        ids.push_back(s2.id);
      else  // 3. pre-tokenize + BPE
        im.encode_text(std::string_view(normalized).substr(s2.b, s2.e - s2.b),
                       seg.b == 0 && s2.b == 0, ids, cache);
    }
  }
  if (add_special && im.post_processor) im.post_processor->process(ids);
  return ids;
}

std::string Tokenizer::decode(const std::vector<int32_t>& ids, bool skip_special) const {
  const tok::TokenizerImpl& im = *impl_;
  std::vector<std::string> tokens;
  tokens.reserve(ids.size());
  for (int32_t id : ids) {
    if (auto it = im.added_by_id.find(id); it != im.added_by_id.end()) {
      const tok::AddedToken& a = im.added[it->second];
      if (skip_special && a.special) continue;
    }
    if (const std::string* t = im.id_to_token(id)) tokens.push_back(*t);
  }
  if (!im.decoder) {
    std::string out;
    for (size_t i = 0; i < tokens.size(); ++i) out += (i ? " " : "") + tokens[i];
    return out;
  }
  im.decoder->decode_chain(tokens, /*streaming=*/false);
  std::string out;
  for (auto& t : tokens) out += t;
  return out;
}

std::string Tokenizer::token_text(int32_t id) const {
  const tok::TokenizerImpl& im = *impl_;
  const std::string* t = im.id_to_token(id);
  if (!t) return "";
  std::vector<std::string> tokens{*t};
  if (im.decoder) im.decoder->decode_chain(tokens, /*streaming=*/true);
  std::string out;
  for (auto& s : tokens) out += s;
  return out;
}

int32_t Tokenizer::bos_id() const { return impl_->bos; }
int32_t Tokenizer::eos_id() const { return impl_->eos; }
std::vector<int32_t> Tokenizer::eos_ids() const { return impl_->eos_list; }
size_t Tokenizer::vocab_size() const { return impl_->vocab_size; }
const std::string& Tokenizer::chat_template() const { return impl_->chat_template; }

int32_t Tokenizer::token_to_id(std::string_view t) const {
  if (auto it = impl_->added_by_content.find(std::string(t)); it != impl_->added_by_content.end())
    return it->second;
  return impl_->model.token_to_id(t);
}

}  // namespace awq
