// Engine: KV-cached incremental decoding and batched decoding against the full-sequence
// forward pass of model/forward.h (forward_hidden + lm_head_forward, itself tested against a
// double-precision naive block and HF Transformers logits in tests/model/).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>

#include "model/forward.h"
#include "common/test_util.h"
#include "io/tokenizer.h"
#include "runtime/engine.h"
#include "kernels/q8_matmul.h"
#include "kernels/w4.h"

using namespace awq;

namespace {

Linear rand_linear(int in, int out, std::mt19937& g, bool bias) {
  return test::random_linear(in, out, g, 0.3f, bias);
}

// A random 3-layer GQA Llama (q/k bias on, as Qwen2) with an untied lm_head.
Model tiny_model(uint32_t seed) {
  std::mt19937 g(seed);
  Model m;
  m.cfg = test::tiny_llama_config(48, 72, 3, 6, 2, 8, 97);
  ModelConfig& c = m.cfg;
  std::normal_distribution<float> d(0.0f, 1.0f);
  std::uniform_real_distribution<float> u(0.5f, 1.5f);
  m.embed.resize((size_t)c.vocab * c.hidden);
  for (auto& w : m.embed) w = d(g);
  m.lm_head.resize((size_t)c.vocab * c.hidden);
  for (auto& w : m.lm_head) w = 0.3f * d(g);
  m.final_norm.resize(c.hidden);
  for (auto& w : m.final_norm) w = u(g);
  const int qd = c.n_heads * c.head_dim, kvd = c.n_kv_heads * c.head_dim;
  for (int l = 0; l < c.n_layers; ++l) {
    BlockWeights b;
    b.q = rand_linear(c.hidden, qd, g, true);
    b.k = rand_linear(c.hidden, kvd, g, true);
    b.v = rand_linear(c.hidden, kvd, g, false);
    b.o = rand_linear(qd, c.hidden, g, false);
    b.gate = rand_linear(c.hidden, c.intermediate, g, false);
    b.up = rand_linear(c.hidden, c.intermediate, g, false);
    b.down = rand_linear(c.intermediate, c.hidden, g, false);
    b.attn_norm.resize(c.hidden);
    b.mlp_norm.resize(c.hidden);
    for (auto& w : b.attn_norm) w = u(g);
    for (auto& w : b.mlp_norm) w = u(g);
    m.blocks.push_back(std::move(b));
  }
  return m;
}

std::vector<int32_t> rand_tokens(int n, int vocab, uint32_t seed) {
  std::mt19937 g(seed);
  std::uniform_int_distribution<int> d(0, vocab - 1);
  std::vector<int32_t> t(n);
  for (auto& x : t) x = d(g);
  return t;
}

// Reference: logits of every position from one full-sequence forward pass.
std::vector<float> full_logits(const Model& m, const std::vector<int32_t>& toks) {
  const int T = (int)toks.size();
  std::vector<float> h((size_t)T * m.cfg.hidden), lg((size_t)T * m.cfg.vocab);
  forward_hidden(m, toks.data(), 1, T, h.data());
  lm_head_forward(m, h.data(), T, lg.data());
  return lg;
}

// Tolerance relative to the logit scale of the reference row (fp32 accumulation differences
// between the blocked and the cached attention orders).
void expect_rows_close(const float* got, const float* ref, int vocab, double rel, const char* what,
                       int pos) {
  double scale = 0, err = 0;
  for (int j = 0; j < vocab; ++j) {
    scale = std::max(scale, (double)std::fabs(ref[j]));
    err = std::max(err, (double)std::fabs(got[j] - ref[j]));
  }
  EXPECT_LE(err, rel * std::max(1.0, scale)) << what << " at position " << pos << ": max err "
                                              << err << ", logit scale " << scale;
}

// Prefill `n_prefill` tokens, then step one at a time; every step's logits vs the reference.
void check_incremental(const Model& m, const std::vector<int32_t>& toks, int n_prefill,
                       double rel, EngineOptions opt = {}) {
  const int V = m.cfg.vocab, T = (int)toks.size();
  const auto ref = full_logits(m, toks);
  opt.max_ctx = T + 3;
  opt.n_slots = 2;
  auto e = Engine::create(m, opt);
  ASSERT_TRUE(e.ok()) << e.error().message;
  std::vector<float> lg;
  // slot 1 so that slot arithmetic in the cache layout is exercised
  const SeqChunk c{1, std::span<const int32_t>(toks.data(), n_prefill)};
  ASSERT_TRUE(e->forward(std::span<const SeqChunk>(&c, 1), lg, true).ok());
  ASSERT_EQ(lg.size(), (size_t)n_prefill * V);
  for (int i = 0; i < n_prefill; ++i)
    expect_rows_close(lg.data() + (size_t)i * V, ref.data() + (size_t)i * V, V, rel, "prefill", i);
  for (int i = n_prefill; i < T; ++i) {
    const int slot = 1;
    ASSERT_TRUE(e->decode(std::span<const int>(&slot, 1), std::span<const int32_t>(&toks[i], 1), lg).ok());
    ASSERT_EQ(lg.size(), (size_t)V);
    expect_rows_close(lg.data(), ref.data() + (size_t)i * V, V, rel, "decode", i);
  }
  EXPECT_EQ(e->pos(1), T);
  EXPECT_EQ(e->pos(0), 0);
}

}  // namespace

TEST(Engine, IncrementalMatchesFullForwardTiny) {
  const Model m = tiny_model(7);
  // prefill lengths below and above the 8-row sgemm switch and the 64-row attention block
  for (int n_prefill : {1, 5, 9, 70}) {
    const auto toks = rand_tokens(n_prefill + 12, m.cfg.vocab, 100 + n_prefill);
    SCOPED_TRACE(n_prefill);
    check_incremental(m, toks, n_prefill, 2e-5);
  }
}

// fp16 K/V: every path (prefill through BLAS on gathered rows, the row-wise path, decode) reads
// the fp16 cache back, so logits stay within fp16 rounding of the fp32 reference, on both the
// batched and the batch-invariant attention paths. K/V relative error 2^-11 is amplified by this
// random-weight model's large scores: measured max 7.4e-3 of the logit scale (prefill 70); a
// wrong offset or conversion gives errors of the order of the logits themselves.
TEST(Engine, Fp16KvStaysWithinItsRoundingOfTheReference) {
  const Model m = tiny_model(7);
  for (bool bi : {false, true})
    for (int n_prefill : {1, 9, 70}) {
      const auto toks = rand_tokens(n_prefill + 12, m.cfg.vocab, 300 + n_prefill);
      SCOPED_TRACE(testing::Message() << "prefill " << n_prefill << " batch_invariant " << bi);
      check_incremental(m, toks, n_prefill, 1.5e-2, {.batch_invariant = bi, .kv_f16 = true});
    }
}

// ... and it is really fp16: the logits differ from the fp32 cache's (beyond fp32 noise), the
// pool takes half the bytes, and truncation copies fp16 blocks.
TEST(Engine, Fp16KvIsStoredAsFp16) {
  const Model m = tiny_model(5);
  EXPECT_EQ(2 * kv_block_bytes(m.cfg, true), kv_block_bytes(m.cfg));
  const auto toks = rand_tokens(40, m.cfg.vocab, 12);
  std::vector<float> a, b;
  auto e32 = Engine::create(m, {.max_ctx = 48, .n_slots = 1, .kv_blocks = 3});
  auto e16 = Engine::create(m, {.max_ctx = 48, .n_slots = 1, .kv_blocks = 3, .kv_f16 = true});
  ASSERT_TRUE(e32.ok() && e16.ok());
  EXPECT_EQ(e16->kv_bytes(), 3 * kv_block_bytes(m.cfg, true));
  EXPECT_EQ(2 * e16->kv_bytes(), e32->kv_bytes());
  ASSERT_TRUE(e32->prefill(0, toks, a).ok());
  ASSERT_TRUE(e16->prefill(0, toks, b).ok());
  double diff = 0, scale = 0;
  for (size_t j = 0; j < a.size(); ++j) {
    diff = std::max(diff, (double)std::fabs(a[j] - b[j]));
    scale = std::max(scale, (double)std::fabs(a[j]));
  }
  EXPECT_GT(diff, 1e-6 * std::max(1.0, scale));
  // truncate in the middle of a block (the partial block is copied), then recompute
  const auto ref = full_logits(m, toks);
  e16->truncate(0, 21);
  ASSERT_TRUE(e16->prefill(0, std::span(toks.data() + 21, 19), b).ok());
  expect_rows_close(b.data(), ref.data() + (size_t)39 * m.cfg.vocab, m.cfg.vocab, 1.5e-2, "fp16 truncate", 39);
}

TEST(Engine, BatchedDecodeMatchesSingleSequences) {
  const Model m = tiny_model(11);
  const int V = m.cfg.vocab;
  const std::vector<int> prompt_len = {3, 17, 9};
  const int n_steps = 10;
  std::vector<std::vector<int32_t>> seqs;
  for (int s = 0; s < 3; ++s) seqs.push_back(rand_tokens(prompt_len[s] + n_steps, V, 50 + s));

  // Alone: each sequence in its own engine, prefill then step.
  std::vector<std::vector<float>> alone(3);  // [step][V] per sequence
  for (int s = 0; s < 3; ++s) {
    auto e = Engine::create(m, {.max_ctx = 64, .n_slots = 1});
    ASSERT_TRUE(e.ok());
    std::vector<float> lg;
    ASSERT_TRUE(e->prefill(0, std::span(seqs[s].data(), prompt_len[s]), lg).ok());
    alone[s].insert(alone[s].end(), lg.begin(), lg.end());
    for (int i = 0; i < n_steps - 1; ++i) {
      const int slot = 0;
      ASSERT_TRUE(e->decode(std::span(&slot, 1), std::span(&seqs[s][prompt_len[s] + i], 1), lg).ok());
      alone[s].insert(alone[s].end(), lg.begin(), lg.end());
    }
  }
  // Together: the three prompts prefilled in one step (slots 2, 0, 1), then decoded together.
  const int slot_of[3] = {2, 0, 1};
  auto e = Engine::create(m, {.max_ctx = 64, .n_slots = 3});
  ASSERT_TRUE(e.ok());
  std::vector<SeqChunk> chunks;
  for (int s = 0; s < 3; ++s) chunks.push_back({slot_of[s], std::span(seqs[s].data(), prompt_len[s])});
  std::vector<float> lg;
  ASSERT_TRUE(e->forward(chunks, lg).ok());
  ASSERT_EQ(lg.size(), (size_t)3 * V);
  for (int s = 0; s < 3; ++s)
    expect_rows_close(lg.data() + (size_t)s * V, alone[s].data(), V, 2e-5, "batched prefill", s);
  for (int i = 0; i < n_steps - 1; ++i) {
    std::vector<int> slots(slot_of, slot_of + 3);
    std::vector<int32_t> toks;
    for (int s = 0; s < 3; ++s) toks.push_back(seqs[s][prompt_len[s] + i]);
    ASSERT_TRUE(e->decode(slots, toks, lg).ok());
    for (int s = 0; s < 3; ++s)
      expect_rows_close(lg.data() + (size_t)s * V, alone[s].data() + (size_t)(i + 1) * V, V, 2e-5,
                        "batched decode", i);
  }
  for (int s = 0; s < 3; ++s) EXPECT_EQ(e->pos(slot_of[s]), prompt_len[s] + n_steps - 1);
}

TEST(Engine, RejectsBadInputWithoutChangingState) {
  const Model m = tiny_model(3);
  auto e = Engine::create(m, {.max_ctx = 8, .n_slots = 2});
  ASSERT_TRUE(e.ok());
  std::vector<float> lg;
  const std::vector<int32_t> ok_toks = {1, 2, 3};
  ASSERT_TRUE(e->prefill(0, ok_toks, lg).ok());
  const std::vector<int32_t> bad_id = {1, 97};
  auto st = e->prefill(1, bad_id, lg);
  EXPECT_FALSE(st.ok());
  EXPECT_NE(st.message().find("out of range"), std::string::npos) << st.message();
  const std::vector<int32_t> too_long(6, 4);
  st = e->prefill(0, too_long, lg);
  EXPECT_FALSE(st.ok());
  EXPECT_NE(st.message().find("context full"), std::string::npos) << st.message();
  EXPECT_FALSE(e->prefill(2, ok_toks, lg).ok());
  EXPECT_FALSE(e->prefill(0, {}, lg).ok());
  const int two[2] = {1, 1};
  const int32_t t2[2] = {1, 2};
  EXPECT_FALSE(e->decode(two, t2, lg).ok());
  EXPECT_EQ(e->pos(0), 3);
  EXPECT_EQ(e->pos(1), 0);
  EXPECT_FALSE(Engine::create(m, {.max_ctx = 0, .n_slots = 1}).ok());
  EXPECT_FALSE(Engine::create(m, {.max_ctx = 8, .n_slots = 0}).ok());
}

TEST(Engine, ResetAndTruncateReuseTheCache) {
  const Model m = tiny_model(5);
  const auto toks = rand_tokens(12, m.cfg.vocab, 9);
  const auto ref = full_logits(m, toks);
  auto e = Engine::create(m, {.max_ctx = 16, .n_slots = 1});
  ASSERT_TRUE(e.ok());
  std::vector<float> lg;
  const auto other = rand_tokens(10, m.cfg.vocab, 10);
  ASSERT_TRUE(e->prefill(0, std::span(other.data(), 10), lg).ok());
  e->reset(0);
  ASSERT_TRUE(e->prefill(0, std::span(toks.data(), 8), lg).ok());
  e->truncate(0, 5);  // keep the common prefix of 5 tokens, recompute the rest
  ASSERT_TRUE(e->prefill(0, std::span(toks.data() + 5, 7), lg).ok());
  expect_rows_close(lg.data(), ref.data() + (size_t)11 * m.cfg.vocab, m.cfg.vocab, 2e-5, "truncate", 11);
}

TEST(Engine, BytesPerTokenCountsEveryWeight) {
  const Model m = tiny_model(1);
  const ModelConfig& c = m.cfg;
  const size_t qd = c.n_heads * c.head_dim, kvd = c.n_kv_heads * c.head_dim;
  const size_t per_block = c.hidden * (qd + 2 * kvd) + qd * c.hidden + 3 * (size_t)c.hidden * c.intermediate +
                           qd + kvd /* q, k bias */ + 2 * c.hidden /* norms */;
  const size_t want = (c.n_layers * per_block + c.hidden /* final norm */ + c.hidden /* embed row */ +
                       (size_t)c.vocab * c.hidden) * 4;
  EXPECT_EQ(weight_bytes_per_token(m), want);
}

TEST(Engine, BytesPerTokenCountsTheQ8LmHead) {
  Model m = tiny_model(1);
  const size_t fp32_head = (size_t)m.cfg.vocab * m.cfg.hidden * 4;
  const size_t before = weight_bytes_per_token(m);
  auto q8 = q8_from_f32(m.lm_head.data(), m.cfg.vocab, m.cfg.hidden);
  ASSERT_TRUE(q8.ok());
  m.lm_head_q8 = std::move(*q8);
  // hidden 48 is padded to 64 codes + 2 fp16 scales per row, the rows to tiles of 16 (all read)
  const size_t rows = ((size_t)m.cfg.vocab + 15) / 16 * 16;
  EXPECT_EQ(m.lm_head_q8.bytes(), rows * (64 + 2 * 2));
  EXPECT_EQ(weight_bytes_per_token(m), before - fp32_head + m.lm_head_q8.bytes());
}

// The 8-bit head serves decode (<= 16 rows through the engine); lm_head_forward (evaluation) and
// larger row counts stay exact.
TEST(Engine, Q8LmHeadIsUsedForDecodeRowsOnly) {
  Model m = tiny_model(3);
  const int H = m.cfg.hidden, V = m.cfg.vocab;
  auto q8 = q8_from_f32(m.lm_head.data(), V, H);
  ASSERT_TRUE(q8.ok());
  m.lm_head_q8 = std::move(*q8);
  std::mt19937 g(5);
  std::normal_distribution<float> d(0.0f, 1.0f);
  for (int n : {1, 16, 17}) {
    std::vector<float> h((size_t)n * H), a((size_t)n * V), b((size_t)n * V), c((size_t)n * V);
    for (auto& v : h) v = d(g);
    lm_head_decode(m, h.data(), n, a.data());
    q8_matmul(m.lm_head_q8, h.data(), n, b.data());
    Model exact = m;
    exact.lm_head_q8 = Q8Matrix{};
    lm_head_forward(exact, h.data(), n, c.data());
    std::vector<float> f((size_t)n * V);
    lm_head_forward(m, h.data(), n, f.data());
    EXPECT_EQ(f, c) << "lm_head_forward must ignore the 8-bit head (n = " << n << ")";
    if (n <= 16)
      EXPECT_EQ(a, b) << "n = " << n;
    else
      EXPECT_EQ(a, c) << "n = " << n;
  }
  // Through the engine: decode logits are the q8 ones, close to (not equal to) the exact head.
  const auto toks = rand_tokens(6, V, 9);
  auto e = Engine::create(m, {.max_ctx = 8, .n_slots = 1});
  ASSERT_TRUE(e.ok());
  std::vector<float> lg;
  ASSERT_TRUE(e->prefill(0, std::span(toks.data(), 6), lg).ok());
  const auto ref = full_logits(m, toks);
  double err = 0, scale = 0;
  for (int j = 0; j < V; ++j) {
    err = std::max(err, (double)std::fabs(lg[j] - ref[(size_t)5 * V + j]));
    scale = std::max(scale, (double)std::fabs(ref[(size_t)5 * V + j]));
  }
  EXPECT_GT(err, 0.0) << "the engine did not use the 8-bit head";
  EXPECT_LT(err, 0.05 * scale) << "8-bit head error too large";
}

TEST(LmHeadFormat, ParsesTheEnvironmentValue) {
  std::string w;
  EXPECT_EQ(resolve_lm_head_format(nullptr, &w), LmHeadFormat::Q8);
  EXPECT_EQ(resolve_lm_head_format("", &w), LmHeadFormat::Q8);
  EXPECT_EQ(resolve_lm_head_format("f16", &w), LmHeadFormat::F16);
  EXPECT_EQ(resolve_lm_head_format("Q8", &w), LmHeadFormat::Q8);
  EXPECT_TRUE(w.empty());
  EXPECT_EQ(resolve_lm_head_format("int4", &w), LmHeadFormat::Q8);
  EXPECT_NE(w.find("AWQ_LM_HEAD=int4"), std::string::npos) << w;
}

// ---- SmolLM2-135M (set AWQ_SMOLLM2_DIR) ----
TEST(SmolLM2, IncrementalMatchesFullForward) {
  const char* dir = std::getenv("AWQ_SMOLLM2_DIR");
  if (!dir) GTEST_SKIP() << "AWQ_SMOLLM2_DIR not set";
  auto m = load_model(dir);
  ASSERT_TRUE(m.ok()) << m.error().message;
  const auto toks = rand_tokens(40, m->cfg.vocab, 77);
  check_incremental(*m, toks, 24, 1e-4);
}

// W4 kernels vs the same checkpoint dequantized to fp32: greedy generation must agree, or at
// least diverge only where the top-2 logits are within fp32 noise of each other.
TEST(SmolLM2Awq, GreedyW4MatchesDequantizedFp32) {
  const char* dir = std::getenv("AWQ_SMOLLM2_AWQ_DIR");
  if (!dir) GTEST_SKIP() << "AWQ_SMOLLM2_AWQ_DIR not set";
  // The exact fp32-activation decode path (the default I8 path is checked below).
  const W4Decode saved_mode = w4_decode_mode();
  w4_set_decode_mode(W4Decode::F32);
  // and the exact lm_head (the 8-bit one is checked in Q8LmHeadCloseToF16LmHead)
  auto m4 = load_model(dir, LoadOptions{.keep_w4 = true, .lm_head = LmHeadFormat::F16});
  ASSERT_TRUE(m4.ok()) << m4.error().message;
  auto mf = load_model(dir, LoadOptions{.keep_w4 = false});
  ASSERT_TRUE(mf.ok()) << mf.error().message;
  auto tok = Tokenizer::load(dir);
  ASSERT_TRUE(tok.ok()) << tok.error().message;
  const std::vector<int32_t> prompt = tok->encode(
      "<|im_start|>user\nWrite a short story about a lighthouse keeper.<|im_end|>\n"
      "<|im_start|>assistant\n");
  const int n_gen = 128, V = m4->cfg.vocab;
  auto gen = [&](const Model& m, std::vector<std::vector<float>>* all) {
    auto e = Engine::create(m, {.max_ctx = 256, .n_slots = 1});
    EXPECT_TRUE(e.ok());
    std::vector<float> lg;
    EXPECT_TRUE(e->prefill(0, prompt, lg).ok());
    std::vector<int32_t> out;
    for (int i = 0; i < n_gen; ++i) {
      all->push_back(lg);
      const int32_t t = (int32_t)(std::max_element(lg.begin(), lg.end()) - lg.begin());
      out.push_back(t);
      const int slot = 0;
      EXPECT_TRUE(e->decode(std::span(&slot, 1), std::span(&t, 1), lg).ok());
    }
    return out;
  };
  std::vector<std::vector<float>> l4, lf;
  const auto a = gen(*m4, &l4), b = gen(*mf, &lf);
  for (int i = 0; i < n_gen; ++i) {
    if (a[i] == b[i]) continue;
    std::vector<float> s = lf[i];
    std::partial_sort(s.begin(), s.begin() + 2, s.end(), std::greater<float>());
    const double margin = s[0] - s[1];
    std::printf("W4 and fp32 greedy tokens diverge at generated position %d: w4 %d vs fp32 %d, "
                "fp32 top-2 logit margin %.6f\n", i, a[i], b[i], margin);
    EXPECT_LT(margin, 2e-2) << "divergence at position " << i
                            << " where the fp32 top-2 margin is not a near tie";
    break;
  }
  (void)V;
  w4_set_decode_mode(saved_mode);
}

// Int8-activation decode (W4Decode::I8) vs the exact fp32-activation decode on the same W4
// checkpoint, teacher-forced on the F32 path's greedy tokens so that every step sees the same
// context: per-step KL(p_f32 || p_i8) of the next-token distribution and top-1 agreement.
// Measured on the RTN g64 checkpoint `make test` passes (docs/KERNELS.md): with one int8 scale
// per 64-value activation block mean KL 3.4e-3 (AVX-512) / 3.2e-3 (AVX2), top-1 124 / 127 of
// 128; with the earlier 32-value blocks 2.0e-3 / 2.2e-3. The limits (mean KL < 5e-3, >= 90 %
// top-1) sit ~1.5x above that, while a broken scale or zero point (KL of order 1) fails.
TEST(SmolLM2Awq, I8DecodeCloseToF32Decode) {
  const char* dir = std::getenv("AWQ_SMOLLM2_AWQ_DIR");
  if (!dir) GTEST_SKIP() << "AWQ_SMOLLM2_AWQ_DIR not set";
  const W4Decode saved_mode = w4_decode_mode();
  auto m4 = load_model(dir, LoadOptions{.keep_w4 = true, .lm_head = LmHeadFormat::F16});
  ASSERT_TRUE(m4.ok()) << m4.error().message;
  auto tok = Tokenizer::load(dir);
  ASSERT_TRUE(tok.ok()) << tok.error().message;
  const std::vector<int32_t> prompt = tok->encode(
      "<|im_start|>user\nWrite a short story about a lighthouse keeper.<|im_end|>\n"
      "<|im_start|>assistant\n");
  const int n_gen = 128;
  // forced empty: greedy; else feed forced[i] at step i. Returns the logits before each step.
  auto run = [&](W4Decode mode, const std::vector<int32_t>& forced, std::vector<int32_t>* toks) {
    w4_set_decode_mode(mode);
    std::vector<std::vector<float>> all;
    auto e = Engine::create(*m4, {.max_ctx = 256, .n_slots = 1});
    EXPECT_TRUE(e.ok());
    std::vector<float> lg;
    EXPECT_TRUE(e->prefill(0, prompt, lg).ok());
    for (int i = 0; i < n_gen; ++i) {
      all.push_back(lg);
      const int32_t t = forced.empty()
                            ? (int32_t)(std::max_element(lg.begin(), lg.end()) - lg.begin())
                            : forced[i];
      if (toks) toks->push_back(t);
      const int slot = 0;
      EXPECT_TRUE(e->decode(std::span(&slot, 1), std::span(&t, 1), lg).ok());
    }
    return all;
  };
  std::vector<int32_t> greedy;
  const auto lf = run(W4Decode::F32, {}, &greedy);
  const auto li = run(W4Decode::I8, greedy, nullptr);
  w4_set_decode_mode(saved_mode);
  double kl_sum = 0, kl_max = 0, dlogit_max = 0;
  int top1_same = 0;
  for (int i = 0; i < n_gen; ++i) {
    const std::vector<float>&a = lf[i], &b = li[i];
    const double ma = *std::max_element(a.begin(), a.end());
    const double mb = *std::max_element(b.begin(), b.end());
    double za = 0, zb = 0;
    for (size_t v = 0; v < a.size(); ++v) za += std::exp(a[v] - ma), zb += std::exp(b[v] - mb);
    double kl = 0;
    for (size_t v = 0; v < a.size(); ++v) {
      const double la = a[v] - ma - std::log(za), lb = b[v] - mb - std::log(zb);
      kl += std::exp(la) * (la - lb);
      dlogit_max = std::max(dlogit_max, (double)std::fabs(a[v] - b[v]));
    }
    kl_sum += kl;
    kl_max = std::max(kl_max, kl);
    top1_same += (std::max_element(a.begin(), a.end()) - a.begin()) ==
                 (std::max_element(b.begin(), b.end()) - b.begin());
  }
  std::printf("I8 vs F32 decode over %d teacher-forced steps: mean KL %.3g, max KL %.3g, "
              "max |logit diff| %.3f, top-1 agreement %d/%d\n",
              n_gen, kl_sum / n_gen, kl_max, dlogit_max, top1_same, n_gen);
  EXPECT_LT(kl_sum / n_gen, 5e-3);
  EXPECT_GE(top1_same, n_gen * 9 / 10);
}

// 8-bit lm_head (LmHeadFormat::Q8, int8 weights and activations) vs the unquantized head of the
// same checkpoint (LmHeadFormat::F16: the file's fp16 head, or fp32), teacher-forced on the
// unquantized head's greedy tokens (the W4 decode mode is the default, AWQ_DECODE / i8, the same
// for both): per-step KL(p_ref || p_q8) and top-1 agreement over 128 decode steps. Measured on
// out/smollm2-awq4 and models/smollm2-fp32: see docs/KERNELS.md. Limits as for the i8 decode
// test (mean KL < 5e-3, >= 90 % top-1); a wrong scale or code order gives KL of order 1.
void check_q8_head_against_unquantized(const char* dir, bool file_head_f16) {
  auto mh = load_model(dir, LoadOptions{.keep_w4 = true, .lm_head = LmHeadFormat::F16});
  ASSERT_TRUE(mh.ok()) << mh.error().message;
  auto mq = load_model(dir, LoadOptions{.keep_w4 = true, .lm_head = LmHeadFormat::Q8});
  ASSERT_TRUE(mq.ok()) << mq.error().message;
  ASSERT_EQ(mh->lm_head_f16.empty(), !file_head_f16);
  ASSERT_TRUE(mh->lm_head_q8.empty());
  ASSERT_FALSE(mq->lm_head_q8.empty());
  ASSERT_TRUE(mq->lm_head_f16.empty());
  EXPECT_LT(weight_bytes_per_token(*mq), weight_bytes_per_token(*mh));
  auto tok = Tokenizer::load(dir);
  ASSERT_TRUE(tok.ok()) << tok.error().message;
  const std::vector<int32_t> prompt = tok->encode(
      "<|im_start|>user\nWrite a short story about a lighthouse keeper.<|im_end|>\n"
      "<|im_start|>assistant\n");
  const int n_gen = 128;
  auto run = [&](const Model& m, const std::vector<int32_t>& forced, std::vector<int32_t>* toks) {
    std::vector<std::vector<float>> all;
    auto e = Engine::create(m, {.max_ctx = 256, .n_slots = 1});
    EXPECT_TRUE(e.ok());
    std::vector<float> lg;
    EXPECT_TRUE(e->prefill(0, prompt, lg).ok());
    for (int i = 0; i < n_gen; ++i) {
      all.push_back(lg);
      const int32_t t = forced.empty()
                            ? (int32_t)(std::max_element(lg.begin(), lg.end()) - lg.begin())
                            : forced[i];
      if (toks) toks->push_back(t);
      const int slot = 0;
      EXPECT_TRUE(e->decode(std::span(&slot, 1), std::span(&t, 1), lg).ok());
    }
    return all;
  };
  std::vector<int32_t> greedy;
  const auto lh = run(*mh, {}, &greedy);
  const auto lq = run(*mq, greedy, nullptr);
  double kl_sum = 0, kl_max = 0, dlogit_max = 0;
  int top1_same = 0;
  for (int i = 0; i < n_gen; ++i) {
    const std::vector<float>&a = lh[i], &b = lq[i];
    const double ma = *std::max_element(a.begin(), a.end());
    const double mb = *std::max_element(b.begin(), b.end());
    double za = 0, zb = 0;
    for (size_t v = 0; v < a.size(); ++v) za += std::exp(a[v] - ma), zb += std::exp(b[v] - mb);
    double kl = 0;
    for (size_t v = 0; v < a.size(); ++v) {
      const double la = a[v] - ma - std::log(za), lb = b[v] - mb - std::log(zb);
      kl += std::exp(la) * (la - lb);
      dlogit_max = std::max(dlogit_max, (double)std::fabs(a[v] - b[v]));
    }
    kl_sum += kl;
    kl_max = std::max(kl_max, kl);
    top1_same += (std::max_element(a.begin(), a.end()) - a.begin()) ==
                 (std::max_element(b.begin(), b.end()) - b.begin());
  }
  std::printf("Q8 vs %s lm_head (W4 decode %s) over %d teacher-forced steps: mean KL %.3g, "
              "max KL %.3g, max |logit diff| %.3f, top-1 agreement %d/%d\n",
              file_head_f16 ? "fp16" : "fp32", decode_name(w4_decode_mode()), n_gen,
              kl_sum / n_gen, kl_max, dlogit_max, top1_same, n_gen);
  EXPECT_LT(kl_sum / n_gen, 5e-3);
  EXPECT_GE(top1_same, n_gen * 9 / 10);
}

TEST(SmolLM2Awq, Q8LmHeadCloseToF16LmHead) {
  const char* dir = std::getenv("AWQ_SMOLLM2_AWQ_DIR");
  if (!dir) GTEST_SKIP() << "AWQ_SMOLLM2_AWQ_DIR not set";
  check_q8_head_against_unquantized(dir, /*file_head_f16=*/true);
}

// The fp32 checkpoint loaded for inference: the 8-bit head is quantized from the fp32 head.
TEST(SmolLM2, Q8LmHeadCloseToFp32LmHead) {
  const char* dir = std::getenv("AWQ_SMOLLM2_DIR");
  if (!dir) GTEST_SKIP() << "AWQ_SMOLLM2_DIR not set";
  check_q8_head_against_unquantized(dir, /*file_head_f16=*/false);
}

// ---- paged KV cache (runtime/kv_pool.h) ----

TEST(EnginePaged, PrefixCacheHitMatchesColdPrefill) {
  const Model m = tiny_model(11);
  const int V = m.cfg.vocab;
  const auto toks = rand_tokens(45, V, 21);
  const auto ref = full_logits(m, toks);
  auto e = Engine::create(m, {.max_ctx = 64, .n_slots = 2});
  ASSERT_TRUE(e.ok());
  std::vector<float> lg;
  ASSERT_TRUE(e->prefill(0, toks, lg).ok());
  e->reset(0);
  EXPECT_EQ(e->kv_stats().used, 0);
  EXPECT_EQ(e->kv_stats().cached, 2);  // the two full blocks of the released sequence
  ASSERT_EQ(e->attach_prefix(1, toks), 32);
  EXPECT_EQ(e->pos(1), 32);
  ASSERT_TRUE(e->prefill(1, std::span(toks.data() + 32, toks.size() - 32), lg).ok());
  expect_rows_close(lg.data(), ref.data() + (size_t)44 * V, V, 2e-5, "prefix hit", 44);
}

TEST(EnginePaged, WritesAfterTruncateDoNotTouchSharedBlocks) {
  const Model m = tiny_model(12);
  const int V = m.cfg.vocab;
  const auto toks = rand_tokens(40, V, 22);
  const auto ref = full_logits(m, toks);
  auto e = Engine::create(m, {.max_ctx = 64, .n_slots = 2});
  ASSERT_TRUE(e.ok());
  std::vector<float> lg;
  ASSERT_TRUE(e->prefill(0, toks, lg).ok());
  ASSERT_EQ(e->attach_prefix(1, toks), 32);  // shares slot 0's two full blocks
  // slot 0 rewrites positions [20, 40) with other tokens: block 1 must be copied, not written
  e->truncate(0, 20);
  EXPECT_EQ(e->pos(0), 20);
  const auto other = rand_tokens(20, V, 23);
  ASSERT_TRUE(e->prefill(0, other, lg).ok());
  ASSERT_TRUE(e->prefill(1, std::span(toks.data() + 32, 8), lg).ok());
  expect_rows_close(lg.data(), ref.data() + (size_t)39 * V, V, 2e-5, "shared after truncate", 39);
}

TEST(EnginePaged, FullPoolIsAnErrorThatChangesNothing) {
  const Model m = tiny_model(13);
  auto e = Engine::create(m, {.max_ctx = 64, .n_slots = 3, .kv_blocks = 3});
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(e->kv_bytes(), 3 * kv_block_bytes(m.cfg));  // memory follows the budget, not slots x ctx
  const auto toks = rand_tokens(20, m.cfg.vocab, 24);
  std::vector<float> lg;
  ASSERT_TRUE(e->prefill(0, toks, lg).ok());  // 2 blocks
  EXPECT_EQ(e->kv_stats().used, 2);
  const Status s = e->prefill(1, toks, lg);
  EXPECT_FALSE(s.ok());
  EXPECT_TRUE(e->kv_full());
  EXPECT_NE(s.message().find("KV cache full"), std::string::npos) << s.message();
  EXPECT_EQ(e->pos(1), 0);
  EXPECT_EQ(e->kv_stats().used, 2);
  ASSERT_TRUE(e->prefill(1, std::span(toks.data(), 10), lg).ok());  // one block still fits
  EXPECT_FALSE(e->kv_full());
  e->reset(0);
  e->reset(1);
  EXPECT_EQ(e->kv_stats().used, 0);
}
