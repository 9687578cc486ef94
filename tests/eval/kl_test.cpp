// KL divergence: hand-computed values, zero for a model against itself, and windowing that
// matches perplexity().
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "eval/kl.h"

using namespace awq;

TEST(Kl, HandComputedTwoAndThreeWay) {
  // P = softmax(0, 0) = (1/2, 1/2); Q = softmax(ln 3, 0) = (3/4, 1/4)
  // KL = 1/2 ln(2/3) + 1/2 ln(2) = 1/2 ln(4/3)
  const float p[2] = {0.0f, 0.0f}, q[2] = {(float)std::log(3.0), 0.0f};
  EXPECT_NEAR(kl_divergence_logits(p, q, 2), 0.5 * std::log(4.0 / 3.0), 1e-7);
  // P = (1/2, 1/4, 1/4) via logits ln(2), 0, 0 (+ constant shift 5); Q uniform.
  // KL = 1/2 ln(3/2) + 2 * 1/4 ln(3/4)
  const float p3[3] = {5.0f + (float)std::log(2.0), 5.0f, 5.0f}, q3[3] = {-1.0f, -1.0f, -1.0f};
  EXPECT_NEAR(kl_divergence_logits(p3, q3, 3), 0.5 * std::log(1.5) + 0.5 * std::log(0.75), 1e-7);
  EXPECT_EQ(kl_divergence_logits(p3, p3, 3), 0.0);
}

namespace {
Model tiny(uint32_t seed, float noise) {
  std::mt19937 g(seed);
  std::normal_distribution<float> d(0.0f, 0.3f);
  Model m;
  ModelConfig& c = m.cfg;
  c.arch = &supported_architectures()[0];
  c.hidden = 32;
  c.intermediate = 48;
  c.n_layers = 2;
  c.n_heads = 4;
  c.n_kv_heads = 2;
  c.head_dim = 8;
  c.vocab = 40;
  auto lin = [&](int in, int out) {
    Linear l;
    l.in = in;
    l.out = out;
    l.weight.resize((size_t)in * out);
    for (auto& w : l.weight) w = d(g);
    return l;
  };
  m.embed.resize((size_t)c.vocab * c.hidden);
  for (auto& w : m.embed) w = 3 * d(g);
  m.final_norm.assign(c.hidden, 1.0f);
  for (int l = 0; l < c.n_layers; ++l) {
    BlockWeights b;
    b.q = lin(32, 32);
    b.k = lin(32, 16);
    b.v = lin(32, 16);
    b.o = lin(32, 32);
    b.gate = lin(32, 48);
    b.up = lin(32, 48);
    b.down = lin(48, 32);
    b.attn_norm.assign(32, 1.0f);
    b.mlp_norm.assign(32, 1.0f);
    m.blocks.push_back(std::move(b));
  }
  // "quantized" copy: perturb the weights
  std::mt19937 g2(seed + 1);
  std::normal_distribution<float> e(0.0f, noise);
  for (auto& b : m.blocks)
    for (Linear* l : {&b.q, &b.k, &b.v, &b.o, &b.gate, &b.up, &b.down})
      for (auto& w : l->weight) w += e(g2);
  return m;
}
}  // namespace

TEST(Kl, ModelAgainstItselfIsZeroAndPplMatches) {
  const Model m = tiny(3, 0.0f);
  std::mt19937 g(5);
  std::vector<int32_t> toks(100);
  for (auto& t : toks) t = (int32_t)(g() % 40);
  KlOptions o;
  o.ctx = 16;
  o.progress = false;
  auto r = kl_divergence(m, m, toks, o);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->windows, 6);
  EXPECT_EQ(r->tokens_scored, 6 * 15);
  EXPECT_EQ(r->mean_kl, 0.0);
  EXPECT_EQ(r->top1_agree, 1.0);
  ASSERT_EQ(r->block_rel_err.size(), m.blocks.size());
  for (double e : r->block_rel_err) EXPECT_EQ(e, 0.0);
  PplOptions po;
  po.ctx = 16;
  po.progress = false;
  auto p = perplexity(m, toks, po);
  ASSERT_TRUE(p.ok());
  EXPECT_NEAR(r->ppl_base, p->ppl, 1e-4 * p->ppl);
  EXPECT_NEAR(r->ppl_quant, p->ppl, 1e-4 * p->ppl);
  o.protocol = PplProtocol::LlamaCpp;
  o.max_windows = 2;
  r = kl_divergence(m, m, toks, o);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->tokens_scored, 2 * 7);
}

TEST(Kl, PerturbedModelHasPositiveKlGrowingWithNoise) {
  const Model base = tiny(3, 0.0f), q1 = tiny(3, 0.01f), q2 = tiny(3, 0.1f);
  std::vector<int32_t> toks(64);
  for (size_t i = 0; i < toks.size(); ++i) toks[i] = (int32_t)((i * 7 + 3) % 40);
  KlOptions o;
  o.ctx = 32;
  o.progress = false;
  auto a = kl_divergence(base, q1, toks, o), b = kl_divergence(base, q2, toks, o);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_GT(a->mean_kl, 0.0);
  EXPECT_GT(b->mean_kl, a->mean_kl);
  EXPECT_GT(b->kl_stderr, 0.0);
  // Per-block residual errors: positive, larger for more noise at every block.
  ASSERT_EQ(a->block_rel_err.size(), base.blocks.size());
  for (size_t l = 0; l < base.blocks.size(); ++l) {
    EXPECT_GT(a->block_rel_err[l], 0.0);
    EXPECT_GT(b->block_rel_err[l], a->block_rel_err[l]);
  }
}

TEST(Kl, BlockErrorIsOnlyWhereTheModelsDiffer) {
  // Perturb only the last block: the earlier blocks' residual streams are identical.
  const Model base = tiny(3, 0.0f);
  ASSERT_GE(base.blocks.size(), 2u);
  Model q = base;
  for (auto& w : q.blocks.back().down.weight) w *= 1.5f;
  std::vector<int32_t> toks(64);
  for (size_t i = 0; i < toks.size(); ++i) toks[i] = (int32_t)((i * 5 + 1) % 40);
  KlOptions o;
  o.ctx = 32;
  o.progress = false;
  auto r = kl_divergence(base, q, toks, o);
  ASSERT_TRUE(r.ok());
  const size_t last = base.blocks.size() - 1;
  for (size_t l = 0; l < last; ++l) EXPECT_EQ(r->block_rel_err[l], 0.0);
  EXPECT_GT(r->block_rel_err[last], 1e-6);
}

TEST(Kl, RejectsMismatchAndShortText) {
  Model a = tiny(1, 0.0f), b = tiny(1, 0.0f);
  b.cfg.vocab = 41;
  std::vector<int32_t> toks(64, 1);
  KlOptions o;
  o.ctx = 16;
  o.progress = false;
  EXPECT_FALSE(kl_divergence(a, b, toks, o).ok());
  o.ctx = 128;
  auto r = kl_divergence(a, a, toks, o);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("too short"), std::string::npos);
}
