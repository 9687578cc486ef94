// HF `tokenizers`-compatible tokenizer for the BPE models (byte-level BPE as in
// GPT-2 / SmolLM / Llama-3 / Qwen2, and SentencePiece-style BPE with byte fallback).
//
// Pipeline (same order as HF `Tokenizer::encode`):
//   text -> split on added tokens (non-normalized ones, then normalized ones after the
//   normalizer ran) -> normalizer -> pre_tokenizer -> BPE model -> post_processor (BOS...)
// decode: ids -> token strings -> decoder chain (ByteLevel, ByteFallback, Fuse, ...).
//
// A Tokenizer is immutable after load(); copies share the loaded tables and every const
// method may be called from several threads at once.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace awq {

namespace tok {
struct TokenizerImpl;
}

class Tokenizer {
 public:
  // dir containing tokenizer.json (and optionally tokenizer_config.json,
  // generation_config.json, chat_template.jinja), or a tokenizer.json path.
  static Expected<Tokenizer> load(const std::string& path);

  // add_special: apply the post-processor (e.g. BOS) like HF
  // `encode(text, add_special_tokens=True)`. Invalid UTF-8 in `text` is replaced by U+FFFD.
  std::vector<int32_t> encode(std::string_view text, bool add_special = true) const;
  // Like HF `decode(ids, skip_special_tokens=skip_special)`; ids out of range are skipped.
  std::string decode(const std::vector<int32_t>& ids, bool skip_special = false) const;
  // Raw bytes of one token for streaming: the decoder chain without its whole-text steps
  // (no Strip of the leading space, no U+FFFD replacement of partial UTF-8). "" if out of range.
  std::string token_text(int32_t id) const;

  int32_t bos_id() const;  // -1 if none
  int32_t eos_id() const;  // -1 if none
  // All ids that end generation: eos, generation_config.json eos_token_id list, and
  // end-of-turn special tokens (<|im_end|>, <|eot_id|>, <|endoftext|>, ...) present here.
  std::vector<int32_t> eos_ids() const;
  int32_t token_to_id(std::string_view tok) const;  // added tokens first, then vocab; -1 if absent
  size_t vocab_size() const;                        // max id + 1, added tokens included
  const std::string& chat_template() const;         // "" if none

 private:
  std::shared_ptr<const tok::TokenizerImpl> impl_;
};

}  // namespace awq
