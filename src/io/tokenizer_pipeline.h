// The configurable stages of an HF tokenizer.json around the model: normalizer,
// pre_tokenizer, post_processor and decoder, each parsed from its JSON object.
#pragma once
#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace awq::tok {

using json = nlohmann::json;

// Where a JSON value sits, for error messages: "tokenizer.json: pre_tokenizer.pretokenizers[1]".
struct JsonPath {
  const std::string& file;
  std::string path;
  JsonPath field(std::string_view key) const {
    return {file, path.empty() ? std::string(key) : path + "." + std::string(key)};
  }
  JsonPath index(size_t i) const { return {file, path + "[" + std::to_string(i) + "]"}; }
  Error error(std::string_view what) const { return make_error(file, ": ", path, ": ", what); }
  Error type_error(const json& j, std::string_view expected) const {
    return make_error(file, ": ", path, ": expected ", expected, ", got ", j.type_name());
  }
};

// Typed field access: a missing key (or null, when `allow_null`) yields `def`.
Expected<std::string> get_string(const json& obj, const JsonPath& at, const char* key,
                                 const char* def = nullptr);
Expected<bool> get_bool(const json& obj, const JsonPath& at, const char* key, bool def);
Expected<int64_t> get_int(const json& obj, const JsonPath& at, const char* key, int64_t def);

// One text piece flowing through the pre-tokenizers.
struct Piece {
  std::string text;
  bool at_origin = false;  // starts at offset 0 of the original input (Metaspace "first")
};

class Normalizer {
 public:
  virtual ~Normalizer() = default;
  virtual void normalize(std::string& s) const = 0;
};

class PreTokenizer {
 public:
  virtual ~PreTokenizer() = default;
  // Replace each piece by its sub-pieces (empty ones dropped).
  virtual void split(std::vector<Piece>& pieces) const = 0;
};

// Needed by post-processors to resolve token strings to ids.
class PostProcessor {
 public:
  virtual ~PostProcessor() = default;
  virtual void process(std::vector<int32_t>& ids) const = 0;  // add_special only
};

class Decoder {
 public:
  virtual ~Decoder() = default;
  // HF decode_chain: tokens in, tokens out. `streaming` skips whole-text steps (Strip,
  // U+FFFD replacement of byte runs) so token_text() returns raw bytes.
  virtual void decode_chain(std::vector<std::string>& tokens, bool streaming) const = 0;
};

// null JSON -> nullptr (stage absent).
Expected<std::unique_ptr<Normalizer>> parse_normalizer(const json& j, const JsonPath& at);
Expected<std::unique_ptr<PreTokenizer>> parse_pre_tokenizer(const json& j, const JsonPath& at);
Expected<std::unique_ptr<Decoder>> parse_decoder(const json& j, const JsonPath& at);
// token_to_id resolves RobertaProcessing/BertProcessing tokens given only by string.
Expected<std::unique_ptr<PostProcessor>> parse_post_processor(const json& j, const JsonPath& at);

// The ids a TemplateProcessing (or Roberta/Bert) post-processor puts before the sequence
// (first one is the BOS candidate). Empty if none.
std::vector<int32_t> post_processor_prefix(const PostProcessor* p);

}  // namespace awq::tok
