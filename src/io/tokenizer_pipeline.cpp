#include "io/tokenizer_pipeline.h"

#include <algorithm>

#include "io/tokenizer_text.h"

namespace awq::tok {

// ---- JSON field helpers -------------------------------------------------------------------

Expected<std::string> get_string(const json& obj, const JsonPath& at, const char* key,
                                 const char* def) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) {
    if (def) return std::string(def);
    return at.field(key).error("missing (expected a string)");
  }
  if (!it->is_string()) return at.field(key).type_error(*it, "a string");
  return it->get<std::string>();
}

Expected<bool> get_bool(const json& obj, const JsonPath& at, const char* key, bool def) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return def;
  if (!it->is_boolean()) return at.field(key).type_error(*it, "a boolean");
  return it->get<bool>();
}

Expected<int64_t> get_int(const json& obj, const JsonPath& at, const char* key, int64_t def) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return def;
  if (!it->is_number_integer()) return at.field(key).type_error(*it, "an integer");
  return it->get<int64_t>();
}

static Expected<std::string> get_type(const json& j, const JsonPath& at) {
  if (!j.is_object()) return at.type_error(j, "an object");
  return get_string(j, at, "type");
}

static Error unsupported(const JsonPath& at, const std::string& type, const char* supported) {
  return make_error(at.file, ": ", at.path, ".type \"", type, "\" is not supported (supported: ",
                    supported, ")");
}

// {"String": "x"} or {"Regex": "..."}
static Expected<Pattern> parse_pattern(const json& obj, const JsonPath& at) {
  auto it = obj.find("pattern");
  const JsonPath pat = at.field("pattern");
  if (it == obj.end()) return pat.error("missing (expected {\"String\": ...} or {\"Regex\": ...})");
  if (it->is_object() && it->contains("String") && (*it)["String"].is_string())
    return Pattern::literal((*it)["String"].get<std::string>());
  if (it->is_object() && it->contains("Regex") && (*it)["Regex"].is_string()) {
    auto re = Regex::compile((*it)["Regex"].get<std::string>());
    if (!re) return pat.field("Regex").error(re.error().message);
    return Pattern::regex(std::move(*re));
  }
  return pat.error("expected {\"String\": \"...\"} or {\"Regex\": \"...\"}, got " + it->dump());
}

static Expected<const json*> get_array(const json& obj, const JsonPath& at, const char* key) {
  auto it = obj.find(key);
  if (it == obj.end()) return at.field(key).error("missing (expected an array)");
  if (!it->is_array()) return at.field(key).type_error(*it, "an array");
  return &*it;
}

// ---- Normalizers --------------------------------------------------------------------------

namespace {

class NormSequence : public Normalizer {
 public:
  std::vector<std::unique_ptr<Normalizer>> parts;
  void normalize(std::string& s) const override {
    for (auto& p : parts) p->normalize(s);
  }
};

class NormPrepend : public Normalizer {
 public:
  std::string prepend;
  void normalize(std::string& s) const override {
    if (!s.empty()) s.insert(0, prepend);
  }
};

class NormReplace : public Normalizer {
 public:
  Pattern pattern;
  std::string content;
  void normalize(std::string& s) const override {
    std::vector<std::pair<size_t, size_t>> m;
    pattern.find_all(s, m);
    if (m.empty()) return;
    std::string out;
    size_t prev = 0;
    for (auto [b, e] : m) {
      out.append(s, prev, b - prev);
      out.append(content);
      prev = e;
    }
    out.append(s, prev);
    s = std::move(out);
  }
};

class NormStrip : public Normalizer {
 public:
  bool left = false, right = false;
  Regex lead, trail;  // ^\s+ and \s+$
  void normalize(std::string& s) const override {
    std::vector<std::pair<size_t, size_t>> m;
    if (right) {
      trail.find_all(s, m);
      if (!m.empty()) s.resize(m.back().first);
    }
    if (left) {
      m.clear();
      lead.find_all(s, m);
      if (!m.empty()) s.erase(0, m.front().second);
    }
  }
};

}  // namespace

Expected<std::unique_ptr<Normalizer>> parse_normalizer(const json& j, const JsonPath& at) {
  if (j.is_null()) return std::unique_ptr<Normalizer>();
  AWQ_ASSIGN(std::string type, get_type(j, at));
  if (type == "Sequence") {
    auto seq = std::make_unique<NormSequence>();
    AWQ_ASSIGN(const json* arr, get_array(j, at, "normalizers"));
    for (size_t i = 0; i < arr->size(); ++i) {
      AWQ_ASSIGN(auto n, parse_normalizer((*arr)[i], at.field("normalizers").index(i)));
      if (n) seq->parts.push_back(std::move(n));
    }
    return std::unique_ptr<Normalizer>(std::move(seq));
  }
  if (type == "Prepend") {
    auto n = std::make_unique<NormPrepend>();
    AWQ_ASSIGN(n->prepend, get_string(j, at, "prepend"));
    return std::unique_ptr<Normalizer>(std::move(n));
  }
  if (type == "Replace") {
    auto n = std::make_unique<NormReplace>();
    AWQ_ASSIGN(n->pattern, parse_pattern(j, at));
    AWQ_ASSIGN(n->content, get_string(j, at, "content"));
    return std::unique_ptr<Normalizer>(std::move(n));
  }
  if (type == "Strip") {
    auto n = std::make_unique<NormStrip>();
    AWQ_ASSIGN(n->left, get_bool(j, at, "strip_left", true));
    AWQ_ASSIGN(n->right, get_bool(j, at, "strip_right", true));
    AWQ_ASSIGN(n->lead, Regex::compile("^\\s+"));
    AWQ_ASSIGN(n->trail, Regex::compile("\\s+$"));
    return std::unique_ptr<Normalizer>(std::move(n));
  }
  return unsupported(at, type, "Sequence, Prepend, Replace, Strip; Unicode normalization forms "
                               "(NFC, NFKC, ...) and Lowercase are not implemented");
}

// ---- Pre-tokenizers -----------------------------------------------------------------------

namespace {

enum class Behavior { Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous };

Expected<Behavior> parse_behavior(const json& j, const JsonPath& at, const char* def) {
  AWQ_ASSIGN(std::string b, get_string(j, at, "behavior", def));
  if (b == "Removed") return Behavior::Removed;
  if (b == "Isolated") return Behavior::Isolated;
  if (b == "MergedWithPrevious") return Behavior::MergedWithPrevious;
  if (b == "MergedWithNext") return Behavior::MergedWithNext;
  if (b == "Contiguous") return Behavior::Contiguous;
  return at.field("behavior").error(
      "\"" + b + "\" is not one of Removed, Isolated, MergedWithPrevious, MergedWithNext, "
                 "Contiguous");
}

// HF NormalizedString::split: cut `p` at the matches of `pattern`, keep/merge per behavior.
void split_piece(const Piece& p, const Pattern& pattern, bool invert, Behavior behavior,
                 std::vector<Piece>& out, std::vector<std::pair<size_t, size_t>>& scratch) {
  struct Span {
    size_t b, e;
    bool match;
  };
  scratch.clear();
  pattern.find_all(p.text, scratch);
  std::vector<Span> spans;
  spans.reserve(scratch.size() * 2 + 1);
  size_t prev = 0;
  for (auto [b, e] : scratch) {
    if (prev != b) spans.push_back({prev, b, invert});
    spans.push_back({b, e, !invert});
    prev = e;
  }
  if (prev != p.text.size()) spans.push_back({prev, p.text.size(), invert});

  std::vector<Span> kept;  // match flag now means "remove"
  kept.reserve(spans.size());
  switch (behavior) {
    case Behavior::Isolated:
      for (auto s : spans) kept.push_back({s.b, s.e, false});
      break;
    case Behavior::Removed:
      kept = spans;
      break;
    case Behavior::MergedWithPrevious: {
      bool prev_match = false;
      for (auto s : spans) {
        if (s.match && !prev_match && !kept.empty())
          kept.back().e = s.e;
        else
          kept.push_back({s.b, s.e, false});
        prev_match = s.match;
      }
      break;
    }
    case Behavior::MergedWithNext: {
      bool prev_match = false;
      for (size_t i = spans.size(); i-- > 0;) {
        const Span s = spans[i];
        if (s.match && !prev_match && !kept.empty())
          kept.back().b = s.b;
        else
          kept.push_back({s.b, s.e, false});
        prev_match = s.match;
      }
      std::reverse(kept.begin(), kept.end());
      break;
    }
    case Behavior::Contiguous: {
      bool prev_match = false;
      for (auto s : spans) {
        if (s.match == prev_match && !kept.empty())
          kept.back().e = s.e;
        else
          kept.push_back({s.b, s.e, false});
        prev_match = s.match;
      }
      break;
    }
  }
  for (auto s : kept)
    if (!s.match && s.e > s.b)
      out.push_back({p.text.substr(s.b, s.e - s.b), p.at_origin && s.b == 0});
}

class PreSplit : public PreTokenizer {
 public:
  Pattern pattern;
  bool invert = false;
  Behavior behavior = Behavior::Isolated;
  void split(std::vector<Piece>& pieces) const override {
    std::vector<Piece> out;
    out.reserve(pieces.size() * 2);
    std::vector<std::pair<size_t, size_t>> scratch;
    for (auto& p : pieces) split_piece(p, pattern, invert, behavior, out, scratch);
    pieces = std::move(out);
  }
};

class PreByteLevel : public PreTokenizer {
 public:
  bool add_prefix_space = true;
  bool use_regex = true;
  Pattern gpt2;
  void split(std::vector<Piece>& pieces) const override {
    std::vector<Piece> out;
    out.reserve(use_regex ? pieces.size() * 4 : pieces.size());
    std::vector<std::pair<size_t, size_t>> scratch;
    for (auto& p : pieces) {
      if (add_prefix_space && (p.text.empty() || p.text[0] != ' ')) p.text = " " + p.text;
      if (use_regex)
        split_piece(p, gpt2, false, Behavior::Isolated, out, scratch);
      else if (!p.text.empty())
        out.push_back(std::move(p));
    }
    std::string mapped;
    for (auto& p : out) {
      mapped.clear();
      byte_level_encode(p.text, mapped);
      p.text.swap(mapped);
    }
    pieces = std::move(out);
  }
};

class PreMetaspace : public PreTokenizer {
 public:
  std::string replacement = "\xE2\x96\x81";  // U+2581
  enum class Prepend { Always, First, Never } prepend = Prepend::Always;
  bool split_on_replacement = true;
  void split(std::vector<Piece>& pieces) const override {
    std::vector<Piece> out;
    std::vector<std::pair<size_t, size_t>> scratch;
    const Pattern rep = Pattern::literal(replacement);
    for (auto& p : pieces) {
      std::string t;
      for (char c : p.text) {
        if (c == ' ')
          t.append(replacement);
        else
          t.push_back(c);
      }
      const bool starts = t.compare(0, replacement.size(), replacement) == 0;
      if (!starts && (prepend == Prepend::Always || (prepend == Prepend::First && p.at_origin)))
        t.insert(0, replacement);
      Piece q{std::move(t), p.at_origin};
      if (split_on_replacement)
        split_piece(q, rep, false, Behavior::MergedWithNext, out, scratch);
      else if (!q.text.empty())
        out.push_back(std::move(q));
    }
    pieces = std::move(out);
  }
};

class PreSequence : public PreTokenizer {
 public:
  std::vector<std::unique_ptr<PreTokenizer>> parts;
  void split(std::vector<Piece>& pieces) const override {
    for (auto& p : parts) p->split(pieces);
  }
};

// GPT-2's pre-tokenization regex as used by HF ByteLevel(use_regex=true).
constexpr const char* kGpt2Regex =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

Expected<std::unique_ptr<PreSplit>> make_split(const char* re, bool invert, Behavior b) {
  auto s = std::make_unique<PreSplit>();
  AWQ_ASSIGN(Regex r, Regex::compile(re));
  s->pattern = Pattern::regex(std::move(r));
  s->invert = invert;
  s->behavior = b;
  return s;
}

}  // namespace

Expected<std::unique_ptr<PreTokenizer>> parse_pre_tokenizer(const json& j, const JsonPath& at) {
  using Ptr = std::unique_ptr<PreTokenizer>;
  if (j.is_null()) return Ptr();
  AWQ_ASSIGN(std::string type, get_type(j, at));
  if (type == "Sequence") {
    auto seq = std::make_unique<PreSequence>();
    AWQ_ASSIGN(const json* arr, get_array(j, at, "pretokenizers"));
    for (size_t i = 0; i < arr->size(); ++i) {
      AWQ_ASSIGN(Ptr p, parse_pre_tokenizer((*arr)[i], at.field("pretokenizers").index(i)));
      if (p) seq->parts.push_back(std::move(p));
    }
    return Ptr(std::move(seq));
  }
  if (type == "ByteLevel") {
    auto p = std::make_unique<PreByteLevel>();
    AWQ_ASSIGN(p->add_prefix_space, get_bool(j, at, "add_prefix_space", true));
    AWQ_ASSIGN(p->use_regex, get_bool(j, at, "use_regex", true));
    AWQ_ASSIGN(Regex r, Regex::compile(kGpt2Regex));
    p->gpt2 = Pattern::regex(std::move(r));
    return Ptr(std::move(p));
  }
  if (type == "Split") {
    auto p = std::make_unique<PreSplit>();
    AWQ_ASSIGN(p->pattern, parse_pattern(j, at));
    AWQ_ASSIGN(p->invert, get_bool(j, at, "invert", false));
    AWQ_ASSIGN(p->behavior, parse_behavior(j, at, nullptr));
    return Ptr(std::move(p));
  }
  if (type == "Digits") {
    AWQ_ASSIGN(bool individual, get_bool(j, at, "individual_digits", false));
    AWQ_ASSIGN(auto p, make_split("\\p{N}", false,
                                  individual ? Behavior::Isolated : Behavior::Contiguous));
    return Ptr(std::move(p));
  }
  if (type == "Whitespace") {
    AWQ_ASSIGN(auto p, make_split("\\w+|[^\\w\\s]+", true, Behavior::Removed));
    return Ptr(std::move(p));
  }
  if (type == "WhitespaceSplit") {
    AWQ_ASSIGN(auto p, make_split("\\s+", false, Behavior::Removed));
    return Ptr(std::move(p));
  }
  if (type == "Punctuation") {
    AWQ_ASSIGN(Behavior b, parse_behavior(j, at, "Isolated"));
    AWQ_ASSIGN(auto p, make_split("[\\p{P}\\x21-\\x2F\\x3A-\\x40\\x5B-\\x60\\x7B-\\x7E]", false, b));
    return Ptr(std::move(p));
  }
  if (type == "Metaspace") {
    auto p = std::make_unique<PreMetaspace>();
    AWQ_ASSIGN(p->replacement, get_string(j, at, "replacement", "\xE2\x96\x81"));
    if (utf8_len_chars(p->replacement) != 1)
      return at.field("replacement").error("expected a single character");
    AWQ_ASSIGN(bool legacy_prefix, get_bool(j, at, "add_prefix_space", true));
    AWQ_ASSIGN(std::string scheme,
               get_string(j, at, "prepend_scheme", legacy_prefix ? "always" : "never"));
    if (scheme == "always")
      p->prepend = PreMetaspace::Prepend::Always;
    else if (scheme == "first")
      p->prepend = PreMetaspace::Prepend::First;
    else if (scheme == "never")
      p->prepend = PreMetaspace::Prepend::Never;
    else
      return at.field("prepend_scheme").error("\"" + scheme + "\" is not one of always, first, never");
    AWQ_ASSIGN(p->split_on_replacement, get_bool(j, at, "split", true));
    return Ptr(std::move(p));
  }
  return unsupported(at, type,
                     "Sequence, ByteLevel, Split, Digits, Metaspace, Whitespace, "
                     "WhitespaceSplit, Punctuation");
}

// ---- Post-processors ----------------------------------------------------------------------

namespace {

class PostTemplate : public PostProcessor {
 public:
  // The single-sequence template flattened: ids before and after $A.
  std::vector<int32_t> before, after;
  void process(std::vector<int32_t>& ids) const override {
    ids.insert(ids.begin(), before.begin(), before.end());
    ids.insert(ids.end(), after.begin(), after.end());
  }
};

class PostSequence : public PostProcessor {
 public:
  std::vector<std::unique_ptr<PostProcessor>> parts;
  void process(std::vector<int32_t>& ids) const override {
    for (auto& p : parts) p->process(ids);
  }
};

class PostNone : public PostProcessor {
 public:
  void process(std::vector<int32_t>&) const override {}
};

// ["<s>", 0] in RobertaProcessing / BertProcessing.
Expected<int32_t> parse_token_pair(const json& j, const JsonPath& at, const char* key) {
  auto it = j.find(key);
  const JsonPath f = at.field(key);
  if (it == j.end()) return f.error("missing (expected [\"token\", id])");
  if (!it->is_array() || it->size() != 2 || !(*it)[0].is_string() ||
      !(*it)[1].is_number_integer())
    return f.error("expected [\"token\", id], got " + it->dump());
  return (*it)[1].get<int32_t>();
}

}  // namespace

Expected<std::unique_ptr<PostProcessor>> parse_post_processor(const json& j, const JsonPath& at) {
  using Ptr = std::unique_ptr<PostProcessor>;
  if (j.is_null()) return Ptr();
  AWQ_ASSIGN(std::string type, get_type(j, at));
  if (type == "Sequence") {
    auto seq = std::make_unique<PostSequence>();
    AWQ_ASSIGN(const json* arr, get_array(j, at, "processors"));
    for (size_t i = 0; i < arr->size(); ++i) {
      AWQ_ASSIGN(Ptr p, parse_post_processor((*arr)[i], at.field("processors").index(i)));
      if (p) seq->parts.push_back(std::move(p));
    }
    return Ptr(std::move(seq));
  }
  if (type == "ByteLevel") return Ptr(std::make_unique<PostNone>());  // offsets only
  if (type == "RobertaProcessing" || type == "BertProcessing") {
    auto p = std::make_unique<PostTemplate>();
    AWQ_ASSIGN(int32_t cls, parse_token_pair(j, at, "cls"));
    AWQ_ASSIGN(int32_t sep, parse_token_pair(j, at, "sep"));
    p->before = {cls};
    p->after = {sep};
    return Ptr(std::move(p));
  }
  if (type == "TemplateProcessing") {
    auto p = std::make_unique<PostTemplate>();
    AWQ_ASSIGN(const json* single, get_array(j, at, "single"));
    const json* specials = nullptr;
    if (auto it = j.find("special_tokens"); it != j.end() && !it->is_null()) {
      if (!it->is_object()) return at.field("special_tokens").type_error(*it, "an object");
      specials = &*it;
    }
    bool seen_a = false;
    for (size_t i = 0; i < single->size(); ++i) {
      const json& item = (*single)[i];
      const JsonPath ia = at.field("single").index(i);
      if (item.is_object() && item.contains("Sequence")) {
        seen_a = true;
        continue;
      }
      if (!item.is_object() || !item.contains("SpecialToken") ||
          !item["SpecialToken"].is_object())
        return ia.error("expected {\"SpecialToken\": {...}} or {\"Sequence\": {...}}, got " +
                        item.dump());
      AWQ_ASSIGN(std::string name, get_string(item["SpecialToken"], ia.field("SpecialToken"), "id"));
      const JsonPath sa = at.field("special_tokens").field(name);
      if (!specials || !specials->contains(name))
        return ia.error("special token \"" + name + "\" is not defined in special_tokens");
      const json& st = (*specials)[name];
      if (!st.is_object() || !st.contains("ids") || !st["ids"].is_array())
        return sa.error("expected an object with an \"ids\" array");
      for (const json& id : st["ids"]) {
        if (!id.is_number_integer()) return sa.field("ids").error("expected integer ids");
        (seen_a ? p->after : p->before).push_back(id.get<int32_t>());
      }
    }
    if (!seen_a) return at.field("single").error("template has no $A sequence");
    return Ptr(std::move(p));
  }
  return unsupported(at, type,
                     "TemplateProcessing, ByteLevel, RobertaProcessing, BertProcessing, Sequence");
}

std::vector<int32_t> post_processor_prefix(const PostProcessor* p) {
  if (auto* t = dynamic_cast<const PostTemplate*>(p)) return t->before;
  if (auto* s = dynamic_cast<const PostSequence*>(p)) {
    for (auto& q : s->parts) {
      auto v = post_processor_prefix(q.get());
      if (!v.empty()) return v;
    }
  }
  return {};
}

// ---- Decoders -----------------------------------------------------------------------------

namespace {

class DecByteLevel : public Decoder {
 public:
  void decode_chain(std::vector<std::string>& tokens, bool streaming) const override {
    std::string bytes;
    for (auto& t : tokens)
      if (!byte_level_decode(t, bytes)) bytes.append(t);
    tokens.assign(1, streaming ? bytes : utf8_lossy(bytes));
  }
};

// <0xNN> tokens -> bytes; a run that is not valid UTF-8 becomes one U+FFFD per byte.
class DecByteFallback : public Decoder {
 public:
  static int byte_of(const std::string& t) {
    if (t.size() != 6 || t.compare(0, 3, "<0x") != 0 || t[5] != '>') return -1;
    auto hex = [](char c) {
      return c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                          : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
    };
    int hi = hex(t[3]), lo = hex(t[4]);
    return hi < 0 || lo < 0 ? -1 : hi * 16 + lo;
  }
  void decode_chain(std::vector<std::string>& tokens, bool streaming) const override {
    std::vector<std::string> out;
    std::string run;
    auto flush = [&] {
      if (run.empty()) return;
      if (streaming || utf8_valid(run))
        out.push_back(run);
      else
        for (size_t i = 0; i < run.size(); ++i) out.push_back("\xEF\xBF\xBD");
      run.clear();
    };
    for (auto& t : tokens) {
      int b = byte_of(t);
      if (b >= 0) {
        run.push_back(char(b));
      } else {
        flush();
        out.push_back(std::move(t));
      }
    }
    flush();
    tokens = std::move(out);
  }
};

class DecFuse : public Decoder {
 public:
  void decode_chain(std::vector<std::string>& tokens, bool) const override {
    std::string all;
    for (auto& t : tokens) all += t;
    tokens.assign(1, std::move(all));
  }
};

class DecStrip : public Decoder {
 public:
  uint32_t content = ' ';
  size_t start = 0, stop = 0;
  void decode_chain(std::vector<std::string>& tokens, bool streaming) const override {
    if (streaming) return;
    for (auto& t : tokens) {
      std::vector<uint32_t> cps;
      std::vector<size_t> offs;
      uint32_t cp;
      for (size_t i = 0; i < t.size();) {
        size_t n = utf8_decode(t, i, &cp);
        if (!n) n = 1, cp = 0xFFFD;
        cps.push_back(cp), offs.push_back(i);
        i += n;
      }
      offs.push_back(t.size());
      size_t start_cut = 0, stop_cut = 0;
      while (start_cut < start && start_cut < cps.size() && cps[start_cut] == content) ++start_cut;
      while (stop_cut < stop && stop_cut < cps.size() && cps[cps.size() - 1 - stop_cut] == content)
        ++stop_cut;
      // HF takes (byte length - start_cut - stop_cut) *chars* after the start cut.
      const size_t take = t.size() >= start_cut + stop_cut ? t.size() - start_cut - stop_cut : 0;
      const size_t end_char = std::min(cps.size(), start_cut + take);
      t = t.substr(offs[start_cut], offs[std::max(end_char, start_cut)] - offs[start_cut]);
    }
  }
};

class DecReplace : public Decoder {
 public:
  NormReplace rep;
  void decode_chain(std::vector<std::string>& tokens, bool) const override {
    for (auto& t : tokens) rep.normalize(t);
  }
};

class DecMetaspace : public Decoder {
 public:
  std::string replacement = "\xE2\x96\x81";
  bool prepend = true;
  void decode_chain(std::vector<std::string>& tokens, bool streaming) const override {
    for (size_t i = 0; i < tokens.size(); ++i) {
      std::string out;
      const std::string& t = tokens[i];
      for (size_t k = 0; k < t.size();) {
        if (t.compare(k, replacement.size(), replacement) == 0) {
          if (!(i == 0 && k == 0 && prepend && !streaming)) out.push_back(' ');
          k += replacement.size();
        } else {
          out.push_back(t[k++]);
        }
      }
      tokens[i] = std::move(out);
    }
  }
};

class DecSequence : public Decoder {
 public:
  std::vector<std::unique_ptr<Decoder>> parts;
  void decode_chain(std::vector<std::string>& tokens, bool streaming) const override {
    for (auto& p : parts) p->decode_chain(tokens, streaming);
  }
};

}  // namespace

Expected<std::unique_ptr<Decoder>> parse_decoder(const json& j, const JsonPath& at) {
  using Ptr = std::unique_ptr<Decoder>;
  if (j.is_null()) return Ptr();
  AWQ_ASSIGN(std::string type, get_type(j, at));
  if (type == "Sequence") {
    auto seq = std::make_unique<DecSequence>();
    AWQ_ASSIGN(const json* arr, get_array(j, at, "decoders"));
    for (size_t i = 0; i < arr->size(); ++i) {
      AWQ_ASSIGN(Ptr p, parse_decoder((*arr)[i], at.field("decoders").index(i)));
      if (p) seq->parts.push_back(std::move(p));
    }
    return Ptr(std::move(seq));
  }
  if (type == "ByteLevel") return Ptr(std::make_unique<DecByteLevel>());
  if (type == "ByteFallback") return Ptr(std::make_unique<DecByteFallback>());
  if (type == "Fuse") return Ptr(std::make_unique<DecFuse>());
  if (type == "Strip") {
    auto d = std::make_unique<DecStrip>();
    AWQ_ASSIGN(std::string c, get_string(j, at, "content", " "));
    uint32_t cp = 0;
    if (c.empty() || utf8_decode(c, 0, &cp) != c.size())
      return at.field("content").error("expected a single character");
    d->content = cp;
    AWQ_ASSIGN(int64_t start, get_int(j, at, "start", 0));
    AWQ_ASSIGN(int64_t stop, get_int(j, at, "stop", 0));
    if (start < 0 || stop < 0) return at.error("start/stop must be >= 0");
    d->start = size_t(start), d->stop = size_t(stop);
    return Ptr(std::move(d));
  }
  if (type == "Replace") {
    auto d = std::make_unique<DecReplace>();
    AWQ_ASSIGN(d->rep.pattern, parse_pattern(j, at));
    AWQ_ASSIGN(d->rep.content, get_string(j, at, "content"));
    return Ptr(std::move(d));
  }
  if (type == "Metaspace") {
    auto d = std::make_unique<DecMetaspace>();
    AWQ_ASSIGN(d->replacement, get_string(j, at, "replacement", "\xE2\x96\x81"));
    AWQ_ASSIGN(bool legacy_prefix, get_bool(j, at, "add_prefix_space", true));
    AWQ_ASSIGN(std::string scheme,
               get_string(j, at, "prepend_scheme", legacy_prefix ? "always" : "never"));
    d->prepend = scheme != "never";
    return Ptr(std::move(d));
  }
  return unsupported(at, type,
                     "ByteLevel, ByteFallback, Fuse, Strip, Replace, Metaspace, Sequence");
}

}  // namespace awq::tok
