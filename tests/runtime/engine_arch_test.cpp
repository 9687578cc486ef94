// The KV engine on every tiny family fixture (tests/fixtures/model/tiny_*): a prefill followed
// by one-token decode steps gives the logits of the full fp32 forward at every position — q/k
// norms, (1 + w) norms, post-norms, GELU-tanh, sliding windows (the windows are shorter than
// the sequences, so decode steps drop keys) and the local RoPE base go through the engine's
// own per-layer code.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "model/forward.h"
#include "runtime/engine.h"

using namespace awq;

namespace {

std::vector<float> full_logits(const Model& m, const std::vector<int32_t>& toks) {
  const int T = (int)toks.size();
  std::vector<float> h((size_t)T * m.cfg.hidden), lg((size_t)T * m.cfg.vocab);
  forward_hidden(m, toks.data(), 1, T, h.data());
  lm_head_forward(m, h.data(), T, lg.data());
  return lg;
}

double row_err(const float* a, const float* b, int V) {
  double scale = 1.0, err = 0;
  for (int j = 0; j < V; ++j) {
    scale = std::max(scale, (double)std::fabs(b[j]));
    err = std::max(err, (double)std::fabs(a[j] - b[j]));
  }
  return err / scale;
}

}  // namespace

class FamilyEngine : public ::testing::TestWithParam<std::string> {};

TEST_P(FamilyEngine, IncrementalMatchesFullForward) {
  auto m = load_model(std::string(AWQ_SOURCE_DIR) + "/tests/fixtures/model/tiny_" + GetParam());
  ASSERT_TRUE(m.ok()) << m.error().message;
  const int V = m->cfg.vocab, T = 30;
  std::mt19937 g(42);
  std::vector<int32_t> toks(T);
  for (auto& t : toks) t = (int32_t)(g() % V);
  const auto ref = full_logits(*m, toks);
  for (int n_prefill : {1, 11}) {
    SCOPED_TRACE(n_prefill);
    auto e = Engine::create(*m, {.max_ctx = T, .n_slots = 2});
    ASSERT_TRUE(e.ok()) << e.error().message;
    std::vector<float> lg;
    const SeqChunk c{1, std::span<const int32_t>(toks.data(), n_prefill)};
    ASSERT_TRUE(e->forward(std::span<const SeqChunk>(&c, 1), lg, true).ok());
    for (int i = 0; i < n_prefill; ++i)
      EXPECT_LT(row_err(lg.data() + (size_t)i * V, ref.data() + (size_t)i * V, V), 2e-5)
          << "prefill row " << i;
    for (int i = n_prefill; i < T; ++i) {
      const int slot = 1;
      ASSERT_TRUE(
          e->decode(std::span<const int>(&slot, 1), std::span<const int32_t>(&toks[i], 1), lg).ok());
      EXPECT_LT(row_err(lg.data(), ref.data() + (size_t)i * V, V), 2e-5) << "decode position " << i;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Tiny, FamilyEngine, ::testing::Values("qwen3", "gemma3", "mistral", "phi3", "gemma2", "mixtral", "qwen3_yarn", "llama3_rope", "qwen2_moe",
                                                   "qwen3_moe"));
