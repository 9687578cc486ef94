// Helpers for text generation front-ends: streaming token bytes as valid UTF-8 text with stop
// strings, and the sampling defaults of a model directory (generation_config.json).
#pragma once
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "runtime/sampler.h"

namespace awq {

// Accumulates the raw bytes of generated tokens and releases text that is safe to print:
// never a partial UTF-8 sequence, never a suffix that could still become a stop string.
class TextStream {
 public:
  explicit TextStream(std::vector<std::string> stops = {});
  // Append one token's bytes; returns the text to print now. When a stop string appears,
  // returns the text before it, sets stopped(), and ignores further input.
  std::string push(std::string_view bytes);
  // End of generation: everything still held back (an incomplete UTF-8 tail is emitted as is).
  std::string flush();
  bool stopped() const { return stopped_; }
  const std::string& text() const { return all_; }  // everything released so far

 private:
  std::vector<std::string> stops_;
  std::string pending_, all_;
  bool stopped_ = false;
};

// Length of the longest prefix of s that ends on a UTF-8 character boundary (a trailing
// incomplete sequence is excluded; invalid bytes count as complete characters).
size_t utf8_complete_prefix(std::string_view s);

// Sampling defaults of `model_dir`/generation_config.json: do_sample, temperature, top_k,
// top_p, min_p, repetition_penalty. No file, or do_sample false/absent without a temperature:
// greedy. Errors: unreadable or malformed JSON, fields of the wrong type.
Expected<SamplingParams> load_generation_defaults(const std::string& model_dir);

}  // namespace awq
