// Group quantization: hand-computed vectors (worked out on paper, see the comments) and the
// independent numpy reference in tests/fixtures/quant (scripts/gen_quant_fixtures.py).
#include "quant/group_quant.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "core/half.h"

namespace awq {
namespace {

std::vector<float> fq(std::vector<float> w, int64_t N, const QuantConfig& cfg) {
  fake_quantize(w.data(), N, int64_t(w.size()) / N, cfg);
  return w;
}

QuantConfig cfg_of(int bits, int g, bool zp) {
  QuantConfig c;
  c.w_bit = bits;
  c.group_size = g;
  c.zero_point = zp;
  return c;
}

// ---- hand-computed vectors -------------------------------------------------------------------

// min 0, max 15 -> scale exactly 1, z = 0; .5 ties go to the even neighbour (std::round would
// give 1, 3, 4, 8, 15 for 0.5, 2.5, 3.5, 7.5, 14.5).
TEST(GroupQuant, Asym4TiesRoundHalfEven) {
  auto got = fq({0, 0.5f, 1.5f, 2.5f, 3.5f, 7.5f, 14.5f, 15}, 1, cfg_of(4, 8, true));
  std::vector<float> want = {0, 0, 2, 2, 4, 8, 14, 15};
  EXPECT_EQ(got, want);
  auto ql = quantize_linear(std::vector<float>{0, 0.5f, 1.5f, 2.5f, 3.5f, 7.5f, 14.5f, 15}.data(),
                            1, 8, cfg_of(4, 8, true));
  ASSERT_TRUE(ql.ok()) << ql.error().message;
  EXPECT_EQ(ql->q, (std::vector<uint8_t>{0, 0, 2, 2, 4, 8, 14, 15}));
  EXPECT_EQ(ql->zeros, (std::vector<uint8_t>{0}));
  EXPECT_EQ(ql->scales, (std::vector<uint16_t>{0x3C00}));  // 1.0
}

// min -2.5, max 12.5 -> range 15, s = 1; z = -round(-2.5) = 2 (half-even; away-from-zero: 3).
TEST(GroupQuant, Asym4NegativeMinTieInZero) {
  std::vector<float> w = {-2.5f, 12.5f, 0, 1, -1, 3.25f, 6.5f, -0.5f};
  auto ql = quantize_linear(w.data(), 1, 8, cfg_of(4, -1, true));
  ASSERT_TRUE(ql.ok());
  EXPECT_EQ(ql->zeros, (std::vector<uint8_t>{2}));
  // q = clamp(round(w) + 2): -2+2, 12+2, 0+2, 1+2, -1+2, 3+2, 6+2, -0+2
  EXPECT_EQ(ql->q, (std::vector<uint8_t>{0, 14, 2, 3, 1, 5, 8, 2}));
  EXPECT_EQ(fq(w, 1, cfg_of(4, -1, true)), (std::vector<float>{-2, 12, 0, 1, -1, 3, 6, 0}));
}

// A scale that is not a power of two: range 0.55, 0.55/15 = 0.0366667 -> fp16 1201 * 2^-15
// (0x3D5D... computed: 1201 * 2^-15 = 0.036651611328125); z = -round(-0.2/s = -5.4568) = 5;
// q = 3+5, -5+5, round(9.549)+5, 0+5.
TEST(GroupQuant, Asym4NonTrivialScale) {
  std::vector<float> w = {0.1f, -0.2f, 0.35f, 0.0f};
  const float s = 1201.0f / 32768.0f;
  EXPECT_EQ(fq(w, 1, cfg_of(4, 4, true)), (std::vector<float>{3 * s, -5 * s, 10 * s, 0}));
  auto ql = quantize_linear(w.data(), 1, 4, cfg_of(4, 4, true));
  ASSERT_TRUE(ql.ok());
  EXPECT_EQ(ql->q, (std::vector<uint8_t>{8, 0, 15, 5}));
  EXPECT_EQ(ql->zeros, (std::vector<uint8_t>{5}));
  EXPECT_EQ(fp16_to_f32(ql->scales[0]), s);
}

// All-equal groups: range 0 -> clamped to 1e-5, s = fp16(1e-5/15) = 11 * 2^-24 (subnormal).
// Positive: z clamps to 0 and q to 15 -> w_hat = 165 * 2^-24 (the reference's behaviour: a
// constant group does not survive asymmetric quantization). Negative: z = 15, q = 0.
TEST(GroupQuant, Asym4AllEqualGroup) {
  const float s = 11.0f * std::ldexp(1.0f, -24);
  auto pos = fq(std::vector<float>(8, 0.3f), 1, cfg_of(4, 8, true));
  EXPECT_EQ(pos, std::vector<float>(8, 15 * s));
  auto neg = fq(std::vector<float>(8, -0.3f), 1, cfg_of(4, 8, true));
  EXPECT_EQ(neg, std::vector<float>(8, -15 * s));
  auto zero = fq(std::vector<float>(8, 0.0f), 1, cfg_of(4, 8, true));
  EXPECT_EQ(zero, std::vector<float>(8, 0.0f));
  std::vector<float> w(8, 0.3f);
  auto ql = quantize_linear(w.data(), 1, 8, cfg_of(4, 8, true));
  ASSERT_TRUE(ql.ok());
  EXPECT_EQ(ql->scales[0], 11);  // fp16 subnormal 11 * 2^-24
  EXPECT_EQ(ql->zeros[0], 0);
  EXPECT_EQ(ql->q, std::vector<uint8_t>(8, 15));
}

// Symmetric all-equal 0.3: s = fp16(0.3/7 = 0.0428571) = 1404 * 2^-15; q = round(7.0017) = 7.
TEST(GroupQuant, Sym4AllEqualGroup) {
  const float s = 1404.0f / 32768.0f;
  EXPECT_EQ(fq(std::vector<float>(4, 0.3f), 1, cfg_of(4, 4, false)), std::vector<float>(4, 7 * s));
}

// amax 7 -> s = 1; ties to even; stored codes are q + 8, zero 8.
TEST(GroupQuant, Sym4Ties) {
  std::vector<float> w = {7, -7, 0.5f, -0.5f, 1.5f, -1.5f, 2.5f, -6.5f};
  EXPECT_EQ(fq(w, 1, cfg_of(4, 8, false)), (std::vector<float>{7, -7, 0, 0, 2, -2, 2, -6}));
  auto ql = quantize_linear(w.data(), 1, 8, cfg_of(4, 8, false));
  ASSERT_TRUE(ql.ok());
  EXPECT_EQ(ql->q, (std::vector<uint8_t>{15, 1, 8, 8, 10, 6, 10, 2}));
  EXPECT_EQ(ql->zeros, (std::vector<uint8_t>{8}));
  EXPECT_EQ(ql->scales, (std::vector<uint16_t>{0x3C00}));
}

// 3 bits: asymmetric qmax 7 (range 7 -> s = 1), symmetric [-4, 3] (amax 3 -> s = 1).
TEST(GroupQuant, ThreeBit) {
  EXPECT_EQ(fq({0, 7, 3.5f, 4.5f, 5.5f, 0.5f, 6.49f, 2}, 1, cfg_of(3, 8, true)),
            (std::vector<float>{0, 7, 4, 4, 6, 0, 6, 2}));
  EXPECT_EQ(fq({3, -3, 0.5f, 1.5f, -2.5f, 2.5f, 0, -1.5f}, 1, cfg_of(3, 8, false)),
            (std::vector<float>{3, -3, 0, 2, -2, 2, 0, -2}));
  std::vector<float> w = {3, -3, 0.5f, 1.5f, -2.5f, 2.5f, 0, -1.5f};
  auto ql = quantize_linear(w.data(), 1, 8, cfg_of(3, 8, false));
  ASSERT_TRUE(ql.ok());
  EXPECT_EQ(ql->q, (std::vector<uint8_t>{7, 1, 4, 6, 2, 6, 4, 2}));
  EXPECT_EQ(ql->zeros, (std::vector<uint8_t>{4}));
}

// 8 bits: asymmetric qmax 255 (range 255 -> s = 1), symmetric [-128, 127] (amax 127 -> s = 1).
TEST(GroupQuant, EightBit) {
  EXPECT_EQ(fq({0, 255, 127.5f, 128.5f, 0.5f, 1.5f, 254.5f, 100.25f}, 1, cfg_of(8, 8, true)),
            (std::vector<float>{0, 255, 128, 128, 0, 2, 254, 100}));
  std::vector<float> w = {127, -127, -126.5f, 3.5f, -0.5f, 64.5f, 65.5f, 1};
  EXPECT_EQ(fq(w, 1, cfg_of(8, 8, false)), (std::vector<float>{127, -127, -126, 4, 0, 64, 66, 1}));
  auto ql = quantize_linear(w.data(), 1, 8, cfg_of(8, 8, false));
  ASSERT_TRUE(ql.ok());
  EXPECT_EQ(ql->q, (std::vector<uint8_t>{255, 1, 2, 132, 128, 192, 194, 129}));
  EXPECT_EQ(ql->zeros, (std::vector<uint8_t>{128}));
}

// Per-channel (G = K = 16): one range per row, so the second half's larger range sets s = 2
// for the whole row (with G = 8 the first half would get s = 1).
TEST(GroupQuant, PerChannelUsesWholeRow) {
  std::vector<float> w(32);
  for (int k = 0; k < 8; ++k) w[k] = float(k);           // row 0, first half: 0..7
  for (int k = 8; k < 16; ++k) w[k] = float(30 - k);     // row 0, second half: 22..15 -> max 22
  w[15] = 30;                                            // max 30, min 0 -> s = 2
  for (int k = 0; k < 16; ++k) w[16 + k] = -float(k);    // row 1: 0..-15 -> s = 1, z = 15
  auto got = fq(w, 2, cfg_of(4, -1, true));
  for (int k = 0; k < 16; ++k) {
    EXPECT_EQ(got[k], 2 * std::nearbyint(w[k] / 2)) << k;
    EXPECT_EQ(got[16 + k], w[16 + k]) << k;
  }
  EXPECT_EQ(got[3], 4.0f);  // 3/2 = 1.5 -> 2 (even) -> 4
  EXPECT_EQ(got[5], 4.0f);  // 5/2 = 2.5 -> 2 (even) -> 4
  EXPECT_EQ(effective_group(cfg_of(4, -1, true), 16), 16);
  EXPECT_EQ(effective_group(cfg_of(4, 128, true), 4096), 128);
}

// Huge |w / s| (the 1e-5 floor with a large constant) saturates instead of wrapping.
TEST(GroupQuant, LargeRatiosSaturate) {
  const float s = 11.0f * std::ldexp(1.0f, -24);
  EXPECT_EQ(fq(std::vector<float>(4, 5000.0f), 1, cfg_of(4, 4, true)), std::vector<float>(4, 15 * s));
  EXPECT_EQ(fq(std::vector<float>(4, -5000.0f), 1, cfg_of(4, 4, true)),
            std::vector<float>(4, -15 * s));
}

TEST(GroupQuant, Errors) {
  std::vector<float> w(8 * 96, 0.1f);
  auto bad_group = quantize_linear(w.data(), 8, 96, cfg_of(4, 64, true));
  ASSERT_FALSE(bad_group.ok());
  EXPECT_NE(bad_group.error().message.find("not a multiple of group_size 64"), std::string::npos)
      << bad_group.error().message;
  EXPECT_FALSE(quantize_linear(w.data(), 8, 96, cfg_of(9, 32, true)).ok());
  EXPECT_FALSE(quantize_linear(w.data(), 8, 96, cfg_of(4, 0, true)).ok());
  w[5 * 96 + 7] = std::nanf("");
  auto nan = quantize_linear(w.data(), 8, 96, cfg_of(4, 32, true));
  ASSERT_FALSE(nan.ok());
  EXPECT_NE(nan.error().message.find("[5, 7] is NaN"), std::string::npos) << nan.error().message;
  // A range whose scale overflows fp16 (6e6 / 15 > 65504).
  std::vector<float> big = {-3e6f, 3e6f, 0, 0};
  auto ovf = quantize_linear(big.data(), 1, 4, cfg_of(4, 4, true));
  ASSERT_FALSE(ovf.ok());
  EXPECT_NE(ovf.error().message.find("overflows fp16"), std::string::npos);
  EXPECT_TRUE(check_quant_shape(cfg_of(4, 128, true), 4096, 11008).ok());  // 11008 = 86 * 128
  EXPECT_FALSE(check_quant_shape(cfg_of(4, 128, true), 4096, 11000).ok());
  EXPECT_TRUE(check_quant_shape(cfg_of(4, -1, true), 4096, 11000).ok());
}

// ---- independent numpy reference ------------------------------------------------------------

struct Fixture {
  std::string name;
  int N = 0, K = 0, w_bit = 0, group_size = 0;
  bool zero_point = true;
  std::vector<float> W, W_hat;
  std::vector<uint8_t> q, zeros;
  std::vector<uint16_t> scales;
};

template <class T>
bool read_vec(std::ifstream& f, std::vector<T>& v, size_t n) {
  v.resize(n);
  f.read(reinterpret_cast<char*>(v.data()), std::streamsize(n * sizeof(T)));
  return bool(f);
}

std::vector<Fixture> load_fixtures() {
  namespace fs = std::filesystem;
  const fs::path dir = fs::path(AWQ_SOURCE_DIR) / "tests" / "fixtures" / "quant";
  std::vector<Fixture> out;
  for (const auto& e : fs::directory_iterator(dir)) {
    if (e.path().extension() != ".bin") continue;
    std::ifstream f(e.path(), std::ios::binary);
    char magic[8];
    int32_t hdr[5];
    f.read(magic, 8);
    f.read(reinterpret_cast<char*>(hdr), sizeof(hdr));
    EXPECT_TRUE(f && std::memcmp(magic, "AWQQFX01", 8) == 0) << e.path();
    Fixture x;
    x.name = e.path().stem().string();
    x.N = hdr[0];
    x.K = hdr[1];
    x.w_bit = hdr[2];
    x.group_size = hdr[3];
    x.zero_point = hdr[4] != 0;
    const size_t nk = size_t(x.N) * x.K;
    const size_t ng = size_t(x.N) * (x.K / (x.group_size > 0 ? x.group_size : x.K));
    bool ok = read_vec(f, x.W, nk) && read_vec(f, x.W_hat, nk) && read_vec(f, x.q, nk) &&
              read_vec(f, x.zeros, ng) && read_vec(f, x.scales, ng);
    EXPECT_TRUE(ok) << "truncated fixture " << e.path();
    f.peek();
    EXPECT_TRUE(f.eof()) << "trailing bytes in " << e.path();
    out.push_back(std::move(x));
  }
  return out;
}

TEST(GroupQuant, MatchesNumpyReferenceBitExact) {
  const auto fixtures = load_fixtures();
  ASSERT_GE(fixtures.size(), 13u) << "run scripts/gen_quant_fixtures.py";
  for (const auto& x : fixtures) {
    SCOPED_TRACE(x.name);
    const QuantConfig cfg = cfg_of(x.w_bit, x.group_size, x.zero_point);
    auto w = x.W;
    fake_quantize(w.data(), x.N, x.K, cfg);
    int mismatches = 0;
    for (size_t i = 0; i < w.size(); ++i) {
      // exact float equality (+0 and -0 compare equal; numpy's round can give -0)
      if (w[i] != x.W_hat[i] && mismatches++ < 5)
        ADD_FAILURE() << "w_hat[" << i / x.K << "][" << i % x.K << "] = " << w[i]
                      << ", numpy says " << x.W_hat[i] << " (w = " << x.W[i] << ")";
    }
    EXPECT_EQ(mismatches, 0);
    auto ql = quantize_linear(x.W.data(), x.N, x.K, cfg);
    ASSERT_TRUE(ql.ok()) << ql.error().message;
    EXPECT_EQ(ql->q, x.q);
    EXPECT_EQ(ql->zeros, x.zeros);
    EXPECT_EQ(ql->scales, x.scales);
    std::vector<float> deq(w.size());
    dequantize_linear(*ql, deq.data());
    EXPECT_EQ(std::memcmp(deq.data(), w.data(), w.size() * 4), 0) << "dequantize != fake_quantize";
  }
}

// dequantize_linear(quantize_linear(W)) == fake_quantize(W) bit for bit on larger random
// matrices (OpenMP path), all bit widths, both modes, per-channel too.
TEST(GroupQuant, DequantizeEqualsFakeQuantizeBitwise) {
  std::mt19937 rng(7);
  std::normal_distribution<float> nd(0.0f, 0.03f);
  const int N = 96, K = 512;
  std::vector<float> W(size_t(N) * K);
  for (auto& v : W) v = nd(rng);
  for (int k = 0; k < K; k += 37) W[k] *= 50;  // outlier channels
  for (int bits : {2, 3, 4, 5, 8}) {
    for (int g : {32, 128, -1}) {
      for (bool zp : {true, false}) {
        const QuantConfig cfg = cfg_of(bits, g, zp);
        auto fqw = W;
        fake_quantize(fqw.data(), N, K, cfg);
        auto ql = quantize_linear(W.data(), N, K, cfg);
        ASSERT_TRUE(ql.ok());
        std::vector<float> deq(W.size());
        dequantize_linear(*ql, deq.data());
        EXPECT_EQ(std::memcmp(deq.data(), fqw.data(), deq.size() * 4), 0)
            << "bits " << bits << " g " << g << " zp " << zp;
        // idempotent for <= 5 bits: quantizing the quantized weights gives them back (same grid;
        // at 8 bits the fp16 scale error (up to 255 * 2^-11 codes) can shrink the range by one)
        if (bits > 5) continue;
        auto fq2 = fqw;
        fake_quantize(fq2.data(), N, K, cfg);
        int diff = 0;
        for (size_t i = 0; i < fq2.size(); ++i) diff += fq2[i] != fqw[i];
        EXPECT_LE(diff, int(fq2.size() / 100)) << "bits " << bits << " g " << g << " zp " << zp;
      }
    }
  }
}

}  // namespace
}  // namespace awq
