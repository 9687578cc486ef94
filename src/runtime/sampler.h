// Token sampling: greedy, temperature, top-k, top-p, min-p, repetition penalty, seeded RNG.
#pragma once
#include <cstdint>
#include <random>
#include <vector>

namespace awq {

struct SamplingParams {
  float temperature = 0.0f;        // 0 = greedy
  int top_k = 0;                   // 0 = off
  float top_p = 1.0f;              // 1 = off
  float min_p = 0.0f;              // 0 = off
  float repetition_penalty = 1.0f; // 1 = off (HF semantics: divide positive logits, multiply negative)
  uint64_t seed = 0;
};

class Sampler {
 public:
  explicit Sampler(const SamplingParams& p) : p_(p), rng_(p.seed) {}
  // logits [vocab] (modified in place); history: tokens seen so far (for the penalty).
  int32_t sample(float* logits, int vocab, const std::vector<int32_t>& history);
  const SamplingParams& params() const { return p_; }

 private:
  SamplingParams p_;
  std::mt19937_64 rng_;
};

}  // namespace awq
