// AutoAWQ GEMM packing: hand-packed words, round trips, shape errors, vLLM TP warnings.
#include "quant/awq_pack.h"

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

namespace awq {
namespace {

// N = 16 outputs, K = 8 inputs, G = 4: q[n][k] = (n + k) & 15, zeros[n][0] = 15 - n,
// zeros[n][1] = n, scales[n][g] = 0x3C00 + 16 * g + n (distinct fp16 bit patterns).
QuantizedLinear example_16x8() {
  QuantizedLinear ql;
  ql.N = 16;
  ql.K = 8;
  ql.group_size = 4;
  ql.w_bit = 4;
  ql.zero_point = true;
  ql.q.resize(16 * 8);
  ql.zeros.resize(16 * 2);
  ql.scales.resize(16 * 2);
  for (int n = 0; n < 16; ++n) {
    for (int k = 0; k < 8; ++k) ql.q[n * 8 + k] = uint8_t((n + k) & 15);
    ql.zeros[n * 2 + 0] = uint8_t(15 - n);
    ql.zeros[n * 2 + 1] = uint8_t(n);
    for (int g = 0; g < 2; ++g) ql.scales[n * 2 + g] = uint16_t(0x3C00 + 16 * g + n);
  }
  return ql;
}

// Worked by hand: nibble i (bits 4i..4i+3) of word j holds column 8j + ORDER[i],
// ORDER = 0 2 4 6 1 3 5 7. Written high nibble first:
//   k=0, j=0: columns 7 5 3 1 6 4 2 0 -> values 7 5 3 1 6 4 2 0 -> 0x75316420
//   k=0, j=1: columns 15 13 11 9 14 12 10 8 -> 0xFDB9ECA8
//   k=1, j=0: values +1 -> 8 6 4 2 7 5 3 1 -> 0x86427531
//   k=1, j=1: 16&15=0 14 12 10 15 13 11 9 -> 0x0ECAFDB9
//   k=7, j=0: (c + 7) & 15 for c = 7 5 3 1 6 4 2 0 -> E C A 8 D B 9 7 -> 0xECA8DB97
TEST(AwqPack, HandPacked16x8) {
  auto t = pack_awq_gemm(example_16x8());
  ASSERT_TRUE(t.ok()) << t.error().message;
  ASSERT_EQ(t->qweight.size(), 8u * 2);
  EXPECT_EQ(uint32_t(t->qweight[0 * 2 + 0]), 0x75316420u);
  EXPECT_EQ(uint32_t(t->qweight[0 * 2 + 1]), 0xFDB9ECA8u);
  EXPECT_EQ(uint32_t(t->qweight[1 * 2 + 0]), 0x86427531u);
  EXPECT_EQ(uint32_t(t->qweight[1 * 2 + 1]), 0x0ECAFDB9u);
  EXPECT_EQ(uint32_t(t->qweight[7 * 2 + 0]), 0xECA8DB97u);
  EXPECT_LT(t->qweight[0 * 2 + 1], 0);  // stored as a negative int32, as torch does
  // zeros g=0: 15 - c for c = 7 5 3 1 6 4 2 0 -> 8 A C E 9 B D F; j=1: 15-(8+c) -> 0 2 4 6 1 3 5 7
  ASSERT_EQ(t->qzeros.size(), 2u * 2);
  EXPECT_EQ(uint32_t(t->qzeros[0]), 0x8ACE9BDFu);
  EXPECT_EQ(uint32_t(t->qzeros[1]), 0x02461357u);
  EXPECT_EQ(uint32_t(t->qzeros[2]), 0x75316420u);  // g=1: zero = n
  EXPECT_EQ(uint32_t(t->qzeros[3]), 0xFDB9ECA8u);
  // scales transposed to [K/G][N]
  ASSERT_EQ(t->scales.size(), 2u * 16);
  EXPECT_EQ(t->scales[0 * 16 + 5], 0x3C05);
  EXPECT_EQ(t->scales[1 * 16 + 5], 0x3C15);
  EXPECT_EQ(t->scales[1 * 16 + 15], 0x3C1F);
  EXPECT_EQ(t->K, 8);
  EXPECT_EQ(t->N, 16);
  EXPECT_EQ(t->group_size, 4);

  auto back = unpack_awq_gemm(t->qweight.data(), t->qzeros.data(), t->scales.data(), 8, 16, 4);
  ASSERT_TRUE(back.ok());
  const auto ex = example_16x8();
  EXPECT_EQ(back->q, ex.q);
  EXPECT_EQ(back->zeros, ex.zeros);
  EXPECT_EQ(back->scales, ex.scales);
}

TEST(AwqPack, RoundTripRandomCodes) {
  std::mt19937 rng(123);
  for (auto [N, K, G] : {std::tuple{8, 32, 32}, {64, 256, 128}, {24, 96, 32}, {512, 64, 64}}) {
    QuantizedLinear ql;
    ql.N = N;
    ql.K = K;
    ql.group_size = G;
    ql.q.resize(size_t(N) * K);
    ql.zeros.resize(size_t(N) * (K / G));
    ql.scales.resize(size_t(N) * (K / G));
    for (auto& v : ql.q) v = uint8_t(rng() & 15);
    for (auto& v : ql.zeros) v = uint8_t(rng() & 15);
    for (auto& v : ql.scales) v = uint16_t(rng());
    auto t = pack_awq_gemm(ql);
    ASSERT_TRUE(t.ok());
    EXPECT_EQ(t->qweight.size(), size_t(K) * N / 8);
    EXPECT_EQ(t->qzeros.size(), size_t(K / G) * N / 8);
    auto back = unpack_awq_gemm(t->qweight.data(), t->qzeros.data(), t->scales.data(), K, N, G);
    ASSERT_TRUE(back.ok());
    EXPECT_EQ(back->q, ql.q);
    EXPECT_EQ(back->zeros, ql.zeros);
    EXPECT_EQ(back->scales, ql.scales);
    // and quantize -> pack -> unpack -> dequantize == fake_quantize
  }
}

TEST(AwqPack, QuantizedRoundTripDequantizesToFakeQuant) {
  std::mt19937 rng(5);
  std::normal_distribution<float> nd(0.0f, 0.02f);
  const int N = 64, K = 256;
  std::vector<float> W(size_t(N) * K);
  for (auto& v : W) v = nd(rng);
  QuantConfig cfg;  // 4 bit, g128, zero point
  auto ql = quantize_linear(W.data(), N, K, cfg);
  ASSERT_TRUE(ql.ok());
  auto t = pack_awq_gemm(*ql);
  ASSERT_TRUE(t.ok());
  auto back = unpack_awq_gemm(t->qweight.data(), t->qzeros.data(), t->scales.data(), K, N, 128);
  ASSERT_TRUE(back.ok());
  std::vector<float> deq(W.size()), ref = W;
  dequantize_linear(*back, deq.data());
  fake_quantize(ref.data(), N, K, cfg);
  EXPECT_EQ(deq, ref);
}

TEST(AwqPack, RejectsUnsupported) {
  auto ql = example_16x8();
  ql.N = 12;  // not a multiple of 8
  auto e = pack_awq_gemm(ql);
  ASSERT_FALSE(e.ok());
  EXPECT_NE(e.error().message.find("multiple of 8"), std::string::npos) << e.error().message;

  ql = example_16x8();
  ql.group_size = 3;  // K = 8 not a multiple
  e = pack_awq_gemm(ql);
  ASSERT_FALSE(e.ok());
  EXPECT_NE(e.error().message.find("group_size 3"), std::string::npos) << e.error().message;

  ql = example_16x8();
  ql.w_bit = 3;
  e = pack_awq_gemm(ql);
  ASSERT_FALSE(e.ok());
  EXPECT_NE(e.error().message.find("4-bit"), std::string::npos);

  ql = example_16x8();
  ql.zero_point = false;
  EXPECT_FALSE(pack_awq_gemm(ql).ok());

  ql = example_16x8();
  ql.q.pop_back();
  EXPECT_FALSE(pack_awq_gemm(ql).ok());

  std::vector<int32_t> qw(8 * 2), qz(2 * 2);
  std::vector<uint16_t> sc(2 * 16);
  EXPECT_FALSE(unpack_awq_gemm(qw.data(), qz.data(), sc.data(), 8, 12, 4).ok());  // N % 8
  EXPECT_FALSE(unpack_awq_gemm(qw.data(), qz.data(), sc.data(), 8, 16, 3).ok());  // K % G
  EXPECT_FALSE(unpack_awq_gemm(qw.data(), qz.data(), sc.data(), 8, 16, 0).ok());
}

bool any_contains(const std::vector<std::string>& v, const std::string& s) {
  for (const auto& x : v)
    if (x.find(s) != std::string::npos) return true;
  return false;
}

TEST(AwqPack, VllmTpWarnings) {
  QuantConfig cfg;  // 4 bit, 128, zp
  // Llama-7B: q_proj loads everywhere; down_proj (K = 11008 = 86 * 128) splits into
  // 5504 = 43 * 128 at tp=2 but 2752 and 1376 (not multiples of 128) at tp=4 and tp=8.
  EXPECT_TRUE(vllm_tp_warnings("q_proj", 4096, 4096, cfg, false).empty());
  auto d = vllm_tp_warnings("down_proj", 11008, 4096, cfg, true);
  EXPECT_FALSE(any_contains(d, "tp=2"));
  EXPECT_TRUE(any_contains(d, "tp=4 (row-parallel, input split): input per shard 2752"));
  EXPECT_TRUE(any_contains(d, "tp=8 (row-parallel, input split): input per shard 1376"));
  // gate_proj of the same model is column-parallel: loads at every tp, but 11008 / 8 = 1376
  // outputs per shard is not a multiple of 64 (Marlin) at tp=8.
  auto gp = vllm_tp_warnings("gate_proj", 4096, 11008, cfg, false);
  EXPECT_FALSE(any_contains(gp, "will not load"));
  ASSERT_EQ(gp.size(), 1u);
  EXPECT_TRUE(any_contains(gp, "tp=8 (column-parallel, output split): output per shard 1376 is "
                               "not a multiple of 64"));
  // TinyLlama-like 5632 = 44 * 128: down_proj K/8 = 704 is not a multiple of 128.
  auto w = vllm_tp_warnings("model.layers.0.mlp.down_proj", 5632, 2048, cfg, true);
  ASSERT_FALSE(w.empty());
  EXPECT_TRUE(any_contains(w, "model.layers.0.mlp.down_proj")) << w[0];
  EXPECT_TRUE(any_contains(w, "tp=8")) << w[0];
  EXPECT_TRUE(any_contains(w, "704 is not a multiple of group_size 128"));
  EXPECT_FALSE(any_contains(w, "tp=2"));
  EXPECT_FALSE(any_contains(w, "tp=4"));  // 1408 = 11 * 128
  // k_proj with 2 kv heads * 64 = 128 outputs: tp=8 gives 16 per shard (loads, no Marlin).
  w = vllm_tp_warnings("k_proj", 2048, 128, cfg, false);
  EXPECT_TRUE(any_contains(w, "tp=4")) << (w.empty() ? "" : w[0]);  // 32 per shard < 64
  EXPECT_TRUE(any_contains(w, "awq_marlin falls back"));
  EXPECT_FALSE(any_contains(w, "will not load"));
  // 40 outputs: tp=8 -> 5 per shard, not a multiple of 8.
  w = vllm_tp_warnings("x", 128, 40, cfg, false);
  EXPECT_TRUE(any_contains(w, "tp=8 (column-parallel, output split): output per shard 5"));
  EXPECT_TRUE(any_contains(w, "tp=2 (column-parallel, output split): output per shard 20"));
  // Config-level problems are reported too.
  QuantConfig c3;
  c3.w_bit = 3;
  EXPECT_TRUE(any_contains(vllm_tp_warnings("q", 4096, 4096, c3, false), "4 bits only"));
  QuantConfig sym;
  sym.zero_point = false;
  EXPECT_TRUE(any_contains(vllm_tp_warnings("q", 4096, 4096, sym, false), "zero_point"));
}

}  // namespace
}  // namespace awq
