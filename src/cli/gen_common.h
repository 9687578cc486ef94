// Shared by `awq generate`, `awq chat` and `awq bench`: model loading and the streaming
// generation loop over an Engine slot.
#pragma once
#include <cstdint>
#include <cstdio>
#include <optional>
#include <string>
#include <unordered_set>
#include <vector>

#include "io/tokenizer.h"
#include "model/weights.h"
#include "runtime/chat_template.h"
#include "runtime/engine.h"
#include "runtime/generate.h"
#include "runtime/sampler.h"

namespace CLI {
class App;
}

namespace awq::cli {

// Sampling flags shared by `awq generate` and `awq chat`; unset flags keep the model's
// generation_config.json values.
struct SamplingArgs {
  std::optional<float> temperature, top_p, min_p, repeat_penalty;
  std::optional<int> top_k;
  uint64_t seed = 0;
};
void add_sampling_options(CLI::App& sub, SamplingArgs& s);
// generation_config.json defaults of `model_dir`, then the given flags; validates the result
// (the error names the offending flag).
Expected<SamplingParams> sampling_params(const std::string& model_dir, const SamplingArgs& s);

// AWQ checkpoints keep 4-bit weights for the W4 kernels unless no_w4 (dequantize to fp32).
Expected<Model> load_for_inference(const std::string& dir, bool no_w4);
// "w4" when any linear runs on the W4 kernels, else "fp32".
const char* weights_kind(const Model& m);

struct GenStats {
  int prompt_tokens = 0, reused = 0, generated = 0;  // reused: prompt prefix already cached
  double prefill_s = 0, decode_s = 0;
  bool hit_eos = false, hit_stop = false, ctx_full = false;
};

// Tokens currently held by one engine slot, so a later turn can reuse the common prefix.
struct SlotState {
  int slot = 0;
  std::vector<int32_t> cached;
};

// Make `prompt` the slot's content (reusing the longest cached common prefix), then sample up
// to max_new tokens, printing text to `out` as it is produced (unless out is null). Stops at
// eos ids and stop strings. *reply receives the printed text.
Expected<GenStats> generate_stream(Engine& eng, SlotState& st, const Tokenizer& tok,
                                   const std::vector<int32_t>& prompt, int max_new,
                                   Sampler& sampler, const std::unordered_set<int32_t>& eos,
                                   const std::vector<std::string>& stops, std::FILE* out,
                                   std::string* reply);

// Special-token strings for chat templates ("" when the tokenizer has none).
std::string token_string(const Tokenizer& tok, int32_t id);

void print_stats(const GenStats& s);

}  // namespace awq::cli
