// Perplexity over a token stream with a named protocol (see docs/EVAL.md).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "core/status.h"
#include "model/weights.h"

namespace awq {

enum class PplProtocol {
  AutoAWQ,   // non-overlapping windows of ctx tokens; every token after the first is scored
  LlamaCpp,  // same windows; only tokens in the second half of each window are scored
};
const char* protocol_name(PplProtocol p);
Expected<PplProtocol> parse_protocol(const std::string& s);

struct PplOptions {
  int ctx = 2048;
  PplProtocol protocol = PplProtocol::AutoAWQ;
  int max_windows = -1;  // -1: all full windows
  bool progress = true;
};

struct PplResult {
  double ppl = 0, mean_nll = 0, ppl_stderr = 0;
  int64_t tokens_scored = 0;
  int windows = 0;
  double seconds = 0;
  int64_t tokens_processed = 0;  // tokens run through the model
  PplProtocol protocol = PplProtocol::AutoAWQ;
  std::vector<float> nll;        // per scored token, in order
};

// The windows a protocol scores: n_windows non-overlapping windows of ctx tokens; in each,
// logit rows [first, ctx - 1) are scored (row i predicts token i + 1).
struct WindowPlan {
  int n_windows = 0;
  int first = 0;
};
Expected<WindowPlan> plan_windows(size_t n_tokens, int ctx, PplProtocol protocol, int max_windows);

Expected<PplResult> perplexity(const Model& m, const std::vector<int32_t>& tokens,
                               const PplOptions& opt);

// Log-probabilities of `targets` under logits rows: out[i] = log_softmax(logits[i])[targets[i]].
void target_logprobs(const float* logits, int64_t rows, int vocab, const int32_t* targets,
                     double* out);

}  // namespace awq
