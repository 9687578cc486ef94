// Text helpers for the tokenizer: UTF-8 decoding/repair, the GPT-2 byte<->char table of
// ByteLevel, and a PCRE2 regex (UTF + Unicode properties, JIT) with Oniguruma-like
// find-all semantics as HF `tokenizers` uses them.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/status.h"

namespace awq::tok {

// Decode the code point starting at s[i]; returns its byte length (>= 1), or 0 when the
// bytes at i are not a valid UTF-8 sequence (overlong, surrogate, truncated, > U+10FFFF).
size_t utf8_decode(std::string_view s, size_t i, uint32_t* cp);
void utf8_append(std::string& out, uint32_t cp);
size_t utf8_len_chars(std::string_view s);

// Like Rust's String::from_utf8_lossy: every maximal invalid subsequence becomes one U+FFFD.
std::string utf8_lossy(std::string_view s);
bool utf8_valid(std::string_view s);

// GPT-2 ByteLevel table: each byte maps to one printable code point (bytes 33..126,
// 161..172, 174..255 map to themselves, the other 68 to U+0100.. in order).
struct ByteLevelTable {
  std::string byte_to_utf8[256];  // UTF-8 of the code point standing for each byte
  int16_t cp_to_byte[512];        // code point (< 512) -> byte, or -1
  static const ByteLevelTable& get();
};
// Append the byte-level form of `raw` to out.
void byte_level_encode(std::string_view raw, std::string& out);
// Map each char of a byte-level token back to its byte. False (out untouched) if some char
// is not in the table (e.g. an added token like "<|im_start|>" is all ASCII and maps fine).
bool byte_level_decode(std::string_view token, std::string& out);

// A compiled regex; copies share the compiled code. Matching is thread-safe.
class Regex {
 public:
  static Expected<Regex> compile(std::string_view pattern);
  // All non-overlapping matches of the regex in s (byte offsets), left to right. An empty
  // match advances the search by one character. s must be valid UTF-8.
  void find_all(std::string_view s, std::vector<std::pair<size_t, size_t>>& out) const;
  // True if the regex matches somewhere in s.
  bool search(std::string_view s) const;

 private:
  std::shared_ptr<void> code_;  // pcre2_code_8
};

// Literal or regex pattern as in HF {"String": ...} / {"Regex": ...}.
class Pattern {
 public:
  static Pattern literal(std::string s);
  static Pattern regex(Regex r);
  void find_all(std::string_view s, std::vector<std::pair<size_t, size_t>>& out) const;

 private:
  std::string literal_;
  std::shared_ptr<Regex> regex_;
};

}  // namespace awq::tok
