#include "runtime/sampler.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <unordered_set>

namespace awq {

int32_t Sampler::sample(float* logits, int vocab, const std::vector<int32_t>& history) {
  if (p_.repetition_penalty != 1.0f) {
    std::unordered_set<int32_t> seen(history.begin(), history.end());
    for (int32_t id : seen) {
      if (id < 0 || id >= vocab) continue;
      float& l = logits[id];
      l = l > 0 ? l / p_.repetition_penalty : l * p_.repetition_penalty;
    }
  }
  if (p_.temperature <= 0.0f) return (int32_t)(std::max_element(logits, logits + vocab) - logits);
  // Candidates sorted by logit (descending); top-k first to keep the sort small.
  std::vector<int32_t> idx(vocab);
  std::iota(idx.begin(), idx.end(), 0);
  int k = (p_.top_k > 0 && p_.top_k < vocab) ? p_.top_k : vocab;
  auto cmp = [&](int32_t a, int32_t b) { return logits[a] > logits[b] || (logits[a] == logits[b] && a < b); };
  std::partial_sort(idx.begin(), idx.begin() + k, idx.end(), cmp);
  idx.resize(k);
  std::vector<double> prob(k);
  const double mx = logits[idx[0]];
  double sum = 0;
  for (int i = 0; i < k; ++i) sum += prob[i] = std::exp((logits[idx[i]] - mx) / p_.temperature);
  for (auto& p : prob) p /= sum;
  int n = k;
  if (p_.min_p > 0.0f) {
    const double thr = p_.min_p * prob[0];
    while (n > 1 && prob[n - 1] < thr) --n;
  }
  if (p_.top_p < 1.0f) {
    double c = 0;
    for (int i = 0; i < n; ++i) {
      c += prob[i];
      if (c >= p_.top_p) {
        n = i + 1;
        break;
      }
    }
  }
  double total = 0;
  for (int i = 0; i < n; ++i) total += prob[i];
  std::uniform_real_distribution<double> u(0.0, total);
  double r = u(rng_), c = 0;
  for (int i = 0; i < n; ++i) {
    c += prob[i];
    if (r < c) return idx[i];
  }
  return idx[n - 1];
}

}  // namespace awq
