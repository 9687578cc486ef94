// W4 kernels: packing (bit-exact), dequantization (bit-exact), and every ISA this host runs
// against an independent double-precision reference computed from the original codes.
#include "kernels/w4.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstring>
#include <cstdint>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "core/half.h"
#include "kernels/cpu/w4_kernels.h"
#include "kernels/gemm.h"
#include "kernels/ref/w4_ref.h"

namespace awq {
namespace {

constexpr int kOrder[8] = {0, 2, 4, 6, 1, 3, 5, 7};  // AutoAWQ nibble i holds column kOrder[i]

// A quantized layer in plain form: codes, zeros, scales (already fp16 values).
struct Codes {
  int K = 0, N = 0, G = 0;  // G: real group size (K for per-channel)
  std::vector<uint8_t> q;   // [N][K]
  std::vector<uint8_t> z;   // [N][K/G]
  std::vector<float> s;     // [N][K/G]
  int ng() const { return K / G; }
  float w(int n, int k) const {
    const int g = k / G;
    return ((float)q[(size_t)n * K + k] - (float)z[(size_t)n * ng() + g]) * s[(size_t)n * ng() + g];
  }
};

// exact_scales: scales are powers of two (2^-3 .. 2^-8), so that with x on a 1/8 grid every
// product and partial sum is exact in fp32, whatever the summation order.
Codes random_codes(int K, int N, int group_size, uint32_t seed, bool exact_scales) {
  Codes c;
  c.K = K;
  c.N = N;
  c.G = group_size == -1 ? K : group_size;
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> code(0, 15), expo(3, 8);
  std::uniform_real_distribution<float> sc(1e-3f, 3e-2f);
  c.q.resize((size_t)N * K);
  for (auto& v : c.q) v = (uint8_t)code(rng);
  c.z.resize((size_t)N * c.ng());
  c.s.resize(c.z.size());
  for (auto& v : c.z) v = (uint8_t)code(rng);
  for (auto& v : c.s) v = exact_scales ? std::ldexp(1.0f, -expo(rng)) : round_fp16(sc(rng));
  return c;
}

std::vector<float> random_x(size_t n, uint32_t seed, bool exact) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> grid(-8, 8);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  std::vector<float> x(n);
  for (auto& v : x) v = exact ? (float)grid(rng) / 8.0f : u(rng);
  return x;
}

// Independent AutoAWQ GEMM packing of the codes (the spec's formulas, written out).
struct AwqTensors {
  std::vector<int32_t> qweight, qzeros;  // [K][N/8], [K/G][N/8]
  std::vector<uint16_t> scales;          // [K/G][N]
};
AwqTensors pack_awq(const Codes& c) {
  AwqTensors t;
  const int nw = c.N / 8;
  t.qweight.assign((size_t)c.K * nw, 0);
  t.qzeros.assign((size_t)c.ng() * nw, 0);
  t.scales.assign((size_t)c.ng() * c.N, 0);
  for (int k = 0; k < c.K; ++k)
    for (int j = 0; j < nw; ++j) {
      uint32_t word = 0;
      for (int i = 0; i < 8; ++i)
        word |= (uint32_t)c.q[(size_t)(8 * j + kOrder[i]) * c.K + k] << (4 * i);
      t.qweight[(size_t)k * nw + j] = (int32_t)word;
    }
  for (int g = 0; g < c.ng(); ++g) {
    for (int j = 0; j < nw; ++j) {
      uint32_t word = 0;
      for (int i = 0; i < 8; ++i)
        word |= (uint32_t)c.z[(size_t)(8 * j + kOrder[i]) * c.ng() + g] << (4 * i);
      t.qzeros[(size_t)g * nw + j] = (int32_t)word;
    }
    for (int n = 0; n < c.N; ++n)
      t.scales[(size_t)g * c.N + n] = f32_to_fp16(c.s[(size_t)n * c.ng() + g]);
  }
  return t;
}

W4Matrix make_w4(const Codes& c) {
  auto r = w4_from_codes(c.q.data(), c.z.data(), c.s.data(), c.K, c.N, c.G == c.K ? -1 : c.G);
  EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error().message);
  return std::move(r).value();
}

std::string isa_label(Isa isa) { return isa_name(isa); }

// ---------------------------------------------------------------------------------------------
// Packing

TEST(W4Pack, HandPackedAwqTinyVector) {
  // K = 2 inputs, N = 8 outputs, per-channel. Word 0x76543210 at k = 0 puts nibble value i into
  // column kOrder[i]: q[n][0] = {0, 4, 1, 5, 2, 6, 3, 7}. k = 1: all codes 15. Zeros 1, scale 0.5.
  const int32_t qweight[2] = {0x76543210, (int32_t)0xFFFFFFFFu};
  const int32_t qzeros[1] = {0x11111111};
  std::vector<uint16_t> scales(8, 0x3800);  // fp16 0.5
  auto w = w4_from_awq(qweight, qzeros, scales.data(), 2, 8, -1);
  ASSERT_TRUE(w.ok()) << w.error().message;
  const uint8_t expect_q0[8] = {0, 4, 1, 5, 2, 6, 3, 7};
  for (int n = 0; n < 8; ++n) {
    EXPECT_EQ(ref::w4_code(*w, n, 0), expect_q0[n]) << n;
    EXPECT_EQ(ref::w4_code(*w, n, 1), 15) << n;
    EXPECT_EQ(ref::w4_zero(*w, n, 0), 1) << n;
    EXPECT_EQ(ref::w4_scale(*w, n, 0), 0.5f) << n;
  }
  // W[n][0] = (q - 1) * 0.5, W[n][1] = 7; x = [1, 2] -> y = W[n][0] + 14.
  // I8: x = [1, 127] quantizes losslessly (amax 127 -> scale 1), y = W[n][0] + 889.
  const float expect_w0[8] = {-0.5f, 1.5f, 0.0f, 2.0f, 0.5f, 2.5f, 1.0f, 3.0f};
  const float x[2] = {1.0f, 2.0f}, x_i8[2] = {1.0f, 127.0f};
  for (Isa isa : w4_available_isas()) {
    std::vector<float> deq(16), y(8), y_i8(8);
    w4_dequantize_isa(isa, *w, deq.data());
    w4_matmul_isa(isa, W4Decode::F32, *w, x, 1, y.data());
    w4_matmul_isa(isa, W4Decode::I8, *w, x_i8, 1, y_i8.data());
    for (int n = 0; n < 8; ++n) {
      EXPECT_EQ(deq[2 * n], expect_w0[n]) << isa_label(isa) << " n=" << n;
      EXPECT_EQ(deq[2 * n + 1], 7.0f) << isa_label(isa) << " n=" << n;
      EXPECT_EQ(y[n], expect_w0[n] + 14.0f) << isa_label(isa) << " n=" << n;
      EXPECT_EQ(y_i8[n], expect_w0[n] + 889.0f) << isa_label(isa) << " n=" << n;
    }
  }
}

TEST(W4Pack, FromAwqEqualsFromCodesBitExact) {
  const int shapes[][3] = {{384, 24, 128}, {640, 72, 32}, {576, 200, 64},
                           {100, 8, -1},   {64, 16, 16},  {96, 8, 48}};
  for (const auto& sh : shapes) {
    const Codes c = random_codes(sh[0], sh[1], sh[2], 7 + sh[0], false);
    const AwqTensors t = pack_awq(c);
    auto a = w4_from_awq(t.qweight.data(), t.qzeros.data(), t.scales.data(), c.K, c.N, sh[2]);
    ASSERT_TRUE(a.ok()) << a.error().message;
    const W4Matrix b = make_w4(c);
    EXPECT_EQ(a->K, b.K);
    EXPECT_EQ(a->N, b.N);
    EXPECT_EQ(a->group_size, c.G);
    ASSERT_EQ(a->data.size(), b.data.size());
    EXPECT_TRUE(a->data == b.data) << "K=" << c.K << " N=" << c.N;
    // Every code / zero / scale reads back as given.
    for (int n = 0; n < c.N; ++n) {
      for (int k = 0; k < c.K; ++k)
        ASSERT_EQ(ref::w4_code(*a, n, k), c.q[(size_t)n * c.K + k]) << n << "," << k;
      for (int g = 0; g < c.ng(); ++g) {
        ASSERT_EQ(ref::w4_zero(*a, n, g), c.z[(size_t)n * c.ng() + g]);
        ASSERT_EQ(ref::w4_scale(*a, n, g), c.s[(size_t)n * c.ng() + g]);
      }
    }
  }
}

TEST(W4Pack, ScalesAreRoundedToFp16) {
  Codes c = random_codes(64, 8, 32, 3, false);
  c.s[0] = 0.0123456789f;  // not an fp16 value
  const W4Matrix w = make_w4(c);
  EXPECT_EQ(ref::w4_scale(w, 0, 0), round_fp16(0.0123456789f));
}

TEST(W4Pack, BadShapesAndValuesAreErrors) {
  const Codes c = random_codes(128, 16, 32, 1, false);
  auto expect_error = [](const Expected<W4Matrix>& r, const std::string& needle) {
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.error().message.find(needle), std::string::npos) << r.error().message;
  };
  expect_error(w4_from_codes(c.q.data(), c.z.data(), c.s.data(), 128, 12, 32), "multiple of 8");
  expect_error(w4_from_codes(c.q.data(), c.z.data(), c.s.data(), 128, 16, 48), "not a multiple");
  expect_error(w4_from_codes(c.q.data(), c.z.data(), c.s.data(), 96, 16, 24), "group_size=24");
  expect_error(w4_from_codes(c.q.data(), c.z.data(), c.s.data(), 0, 16, 32), "positive");
  expect_error(w4_from_codes(c.q.data(), c.z.data(), c.s.data(), 128, 16, 0), "group_size");
  Codes bad = c;
  bad.q[5] = 16;
  expect_error(w4_from_codes(bad.q.data(), bad.z.data(), bad.s.data(), 128, 16, 32), "q[0][5]");
  bad = c;
  bad.z[3] = 200;
  expect_error(w4_from_codes(bad.q.data(), bad.z.data(), bad.s.data(), 128, 16, 32), "z[0][3]");
  bad = c;
  bad.s[2] = NAN;
  expect_error(w4_from_codes(bad.q.data(), bad.z.data(), bad.s.data(), 128, 16, 32), "s[0][2]");
  bad.s[2] = 1e6f;  // overflows fp16
  expect_error(w4_from_codes(bad.q.data(), bad.z.data(), bad.s.data(), 128, 16, 32), "not finite");
  AwqTensors t = pack_awq(c);
  t.scales[1] = 0x7c00;  // +inf
  expect_error(w4_from_awq(t.qweight.data(), t.qzeros.data(), t.scales.data(), 128, 16, 32),
               "scales[0][1]");
  expect_error(w4_from_awq(t.qweight.data(), t.qzeros.data(), t.scales.data(), 128, 20, 32),
               "multiple of 8");
}

// ---------------------------------------------------------------------------------------------
// Dequantization: bit-exact (q - z) * s on every ISA.

TEST(W4Dequant, BitExactOnEveryIsa) {
  const int shapes[][3] = {{384, 24, 128}, {640, 72, 32}, {576, 200, 64},
                           {200, 8, -1},   {37, 16, -1},  {96, 16, 48}};
  for (const auto& sh : shapes) {
    const Codes c = random_codes(sh[0], sh[1], sh[2], 11 + sh[1], false);
    const W4Matrix w = make_w4(c);
    std::vector<float> ref_out((size_t)c.N * c.K);
    ref::w4_dequantize(w, ref_out.data());
    for (int n = 0; n < c.N; ++n)
      for (int k = 0; k < c.K; ++k) ASSERT_EQ(ref_out[(size_t)n * c.K + k], c.w(n, k));
    for (Isa isa : w4_available_isas()) {
      std::vector<float> out((size_t)c.N * c.K, -12345.0f);
      w4_dequantize_isa(isa, w, out.data());
      for (size_t i = 0; i < out.size(); ++i)
        ASSERT_EQ(out[i], ref_out[i])
            << isa_label(isa) << " K=" << c.K << " N=" << c.N << " i=" << i;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Matmul: every ISA, both paths (decode kernel, dequant + sgemm), awkward shapes.

struct MatmulCase {
  int K, N, group_size;
};
const MatmulCase kCases[] = {
    {384, 8, 128},  {384, 72, 32}, {384, 200, 64}, {640, 24, 128}, {640, 200, 32},
    {576, 24, 64},  {576, 72, 32}, {576, 200, -1}, {1536, 8, 128}, {1536, 72, 64},
    {1536, 24, 32}, {200, 24, -1}, {37, 8, -1},    {640, 8, 64},   {96, 16, 48},
};
const int kBatches[] = {1, 2, 3, 4, 7, 8, 16, 33, 64};

// y = x W^T + bias in double, from the codes.
std::vector<double> reference(const Codes& c, const std::vector<float>& x, int M,
                              const std::vector<float>& bias) {
  std::vector<double> y((size_t)M * c.N);
  for (int m = 0; m < M; ++m)
    for (int n = 0; n < c.N; ++n) {
      double acc = bias[n];
      for (int k = 0; k < c.K; ++k) acc += (double)x[(size_t)m * c.K + k] * c.w(n, k);
      y[(size_t)m * c.N + n] = acc;
    }
  return y;
}

// Error bound for an fp32 evaluation in any order and with the group factoring of the decode
// kernel (sf * sum(q x) + zs * sum(x)): (K + 16) * eps * sum_k |x_k| (q + z) s, plus the bias add.
double tolerance(const Codes& c, const float* x, int n, float bias) {
  double mag = std::fabs(bias);
  for (int k = 0; k < c.K; ++k) {
    const int g = k / c.G;
    mag += std::fabs(x[k]) * ((double)c.q[(size_t)n * c.K + k] + c.z[(size_t)n * c.ng() + g]) *
           c.s[(size_t)n * c.ng() + g];
  }
  return (c.K + 16) * (double)FLT_EPSILON * mag;
}

class W4MatmulPaths : public ::testing::TestWithParam<int> {
 protected:
  void SetUp() override { w4_set_decode_max_m(GetParam()); }
  void TearDown() override { w4_set_decode_max_m(-1); }
};

// Powers-of-two scales and x on a 1/8 grid: every path must be exact, so any layout or indexing
// slip shows up as a mismatch however small.
TEST_P(W4MatmulPaths, ExactDataMatchesReferenceExactly) {
  for (const MatmulCase& mc : kCases) {
    const Codes c = random_codes(mc.K, mc.N, mc.group_size, 100 + mc.K + mc.N, true);
    const W4Matrix w = make_w4(c);
    const std::vector<float> bias = random_x(c.N, 5, true);
    for (int M : kBatches) {
      const std::vector<float> x = random_x((size_t)M * c.K, 1000 + M, true);
      const std::vector<double> want = reference(c, x, M, bias);
      for (Isa isa : w4_available_isas()) {
        std::vector<float> y((size_t)M * c.N, NAN);
        w4_matmul_isa(isa, W4Decode::F32, w, x.data(), M, y.data(), bias.data());
        for (size_t i = 0; i < y.size(); ++i)
          ASSERT_EQ((double)y[i], want[i])
              << isa_label(isa) << " K=" << c.K << " N=" << c.N << " G=" << mc.group_size
              << " M=" << M << " m=" << i / c.N << " n=" << i % c.N;
      }
    }
  }
}

TEST_P(W4MatmulPaths, RandomDataWithinDerivedTolerance) {
  for (const MatmulCase& mc : kCases) {
    const Codes c = random_codes(mc.K, mc.N, mc.group_size, 200 + mc.K * 3 + mc.N, false);
    const W4Matrix w = make_w4(c);
    const std::vector<float> bias = random_x(c.N, 9, false);
    for (int M : kBatches) {
      const std::vector<float> x = random_x((size_t)M * c.K, 2000 + M, false);
      const std::vector<double> want = reference(c, x, M, bias);
      for (Isa isa : w4_available_isas()) {
        std::vector<float> y((size_t)M * c.N, NAN);
        w4_matmul_isa(isa, W4Decode::F32, w, x.data(), M, y.data(), bias.data());
        for (int m = 0; m < M; ++m)
          for (int n = 0; n < c.N; ++n) {
            const double tol = tolerance(c, x.data() + (size_t)m * c.K, n, bias[n]);
            ASSERT_NEAR(y[(size_t)m * c.N + n], want[(size_t)m * c.N + n], tol)
                << isa_label(isa) << " K=" << c.K << " N=" << c.N << " G=" << mc.group_size
                << " M=" << M << " m=" << m << " n=" << n;
          }
      }
    }
  }
}

// decode_max_m: 0 = always dequant + sgemm; 64 = always the decode kernel; -1 = default split.
INSTANTIATE_TEST_SUITE_P(Paths, W4MatmulPaths, ::testing::Values(-1, 0, 64),
                         [](const ::testing::TestParamInfo<int>& p) {
                           return p.param < 0    ? std::string("Default")
                                  : p.param == 0 ? std::string("Sgemm")
                                                 : std::string("Decode");
                         });

// ---------------------------------------------------------------------------------------------
// I8 decode path: activations quantized per activation block of a group (w4.h, W4Decode::I8).

// The test's statement of the activation block: the group's sub-blocks of 32 (group rounded up
// to 32) taken 4, 3, 2 or 1 at a time, the largest of those that divides their count; a block's
// padding past the group counts as zeros.
int act_block_len(const Codes& c) {
  const int nb = (c.G + 31) / 32;
  return 32 * (nb % 4 == 0 ? 4 : nb % 3 == 0 ? 3 : nb % 2 == 0 ? 2 : 1);
}

// The test's own statement of the activation quantization: per row, per group, per activation
// block: d = amax / 127, q = nearest-even(x * (127 / amax)). Returns x^ = d * q (exact in double)
// and the block scale d of every element.
struct QuantizedX {
  std::vector<double> xhat;  // [M][K]
  std::vector<float> d;      // [M][K]: scale of the element's block
};
QuantizedX quantize_x(const Codes& c, const std::vector<float>& x, int M) {
  QuantizedX r;
  r.xhat.resize((size_t)M * c.K);
  r.d.resize((size_t)M * c.K);
  const int A = act_block_len(c);
  for (int m = 0; m < M; ++m)
    for (int k0 = 0; k0 < c.K;) {
      const int k1 = std::min(k0 + A, (k0 / c.G + 1) * c.G);  // blocks never cross a group
      float amax = 0.0f;
      for (int k = k0; k < k1; ++k) amax = std::max(amax, std::fabs(x[(size_t)m * c.K + k]));
      const float d = amax / 127.0f, id = amax > 0.0f ? 127.0f / amax : 0.0f;
      for (int k = k0; k < k1; ++k) {
        const float q = std::nearbyint(x[(size_t)m * c.K + k] * id);
        EXPECT_LE(std::fabs(q), 127.0f);
        r.xhat[(size_t)m * c.K + k] = (double)d * q;
        r.d[(size_t)m * c.K + k] = d;
      }
      k0 = k1;
    }
  return r;
}

// x that the I8 quantization represents exactly: in every activation block one element is
// +-127/32 (so d = 1/32 exactly) and the others are i/32 with |i| <= 4. With power-of-two weight
// scales every fp32 operation of both paths is then exact for K <= 1536 (magnitudes < 2^24 grid
// steps).
std::vector<float> lossless_i8_x(const Codes& c, int M, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> small(-4, 4), coin(0, 1);
  std::vector<float> x((size_t)M * c.K);
  const int A = act_block_len(c);
  for (int m = 0; m < M; ++m)
    for (int k0 = 0; k0 < c.K;) {
      const int k1 = std::min(k0 + A, (k0 / c.G + 1) * c.G);
      for (int k = k0; k < k1; ++k) x[(size_t)m * c.K + k] = (float)small(rng) / 32.0f;
      const int at = k0 + (int)(rng() % (uint32_t)(k1 - k0));
      x[(size_t)m * c.K + at] = (coin(rng) ? 127.0f : -127.0f) / 32.0f;
      k0 = k1;
    }
  return x;
}

class W4MatmulI8 : public ::testing::Test {
 protected:
  void SetUp() override { w4_set_decode_max_m(64); }  // the decode kernel for every M here
  void TearDown() override { w4_set_decode_max_m(-1); }
};

// Lossless activations + power-of-two scales: the I8 path must be exact on every ISA.
TEST_F(W4MatmulI8, LosslessDataMatchesReferenceExactly) {
  for (const MatmulCase& mc : kCases) {
    const Codes c = random_codes(mc.K, mc.N, mc.group_size, 300 + mc.K + mc.N, true);
    const W4Matrix w = make_w4(c);
    const std::vector<float> bias = random_x(c.N, 6, true);
    for (int M : kBatches) {
      const std::vector<float> x = lossless_i8_x(c, M, 3000 + M);
      const QuantizedX qx = quantize_x(c, x, M);
      for (size_t i = 0; i < x.size(); ++i) ASSERT_EQ(qx.xhat[i], (double)x[i]) << i;
      const std::vector<double> want = reference(c, x, M, bias);
      for (Isa isa : w4_available_isas()) {
        std::vector<float> y((size_t)M * c.N, NAN);
        w4_matmul_isa(isa, W4Decode::I8, w, x.data(), M, y.data(), bias.data());
        for (size_t i = 0; i < y.size(); ++i)
          ASSERT_EQ((double)y[i], want[i])
              << isa_label(isa) << " K=" << c.K << " N=" << c.N << " G=" << mc.group_size
              << " M=" << M << " m=" << i / c.N << " n=" << i % c.N;
      }
    }
  }
}

// Batch invariance (what `awq serve` relies on): a row's outputs are bit-identical whether it is
// alone (M = 1) or at any position among M - 1 other, different rows, on every ISA.
TEST_F(W4MatmulI8, RowIsBitIdenticalWhateverTheOtherRows) {
  for (const MatmulCase& mc : kCases) {
    const Codes c = random_codes(mc.K, mc.N, mc.group_size, 700 + mc.K + mc.N, false);
    const W4Matrix w = make_w4(c);
    const std::vector<float> bias = random_x(c.N, 11, false);
    const std::vector<float> row = random_x(c.K, 12, false);
    for (Isa isa : w4_available_isas()) {
      std::vector<float> alone(c.N, NAN);
      w4_matmul_isa(isa, W4Decode::I8, w, row.data(), 1, alone.data(), bias.data());
      for (int M : {2, 3, 9, 32, 33, 64}) {
        for (int at : {0, M / 2, M - 1}) {
          std::vector<float> x = random_x((size_t)M * c.K, 5000 + M + at, false);
          std::copy(row.begin(), row.end(), x.begin() + (size_t)at * c.K);
          std::vector<float> y((size_t)M * c.N, NAN);
          w4_matmul_isa(isa, W4Decode::I8, w, x.data(), M, y.data(), bias.data());
          ASSERT_EQ(0, std::memcmp(alone.data(), y.data() + (size_t)at * c.N, sizeof(float) * c.N))
              << isa_label(isa) << " K=" << c.K << " N=" << c.N << " G=" << mc.group_size
              << " M=" << M << " row at " << at;
        }
      }
    }
  }
}

// The AVX-512 activation quantizer writes the SSE2 one's bytes and scales exactly, for every
// activation-block shape (act_sub 1..4, padded groups, per-channel) and for rows with zeros,
// huge and tiny values.
TEST(W4QuantizeX, Avx512EqualsSse2BitExact) {
  if (!w4_isa_available(Isa::Avx512)) GTEST_SKIP() << "no AVX-512";
  struct Shape {
    int K, G;
  };
  for (const Shape sh : {Shape{576, 64}, {1536, 128}, {96, 96}, {160, 160}, {224, 32}, {208, 208},
                         {384, 128}, {72, 72}}) {
    const W4Matrix w = make_w4(random_codes(sh.K, 8, sh.G, 77 + (uint32_t)sh.K, false));
    const int n_act = w.n_groups * w.n_act();
    for (int variant = 0; variant < 8; ++variant) {
      const int sub_bytes = variant < 4 ? 64 : 32;  // duplicated (AVX2) and compact (AVX-512)
      const int ldxq = sub_bytes * (w.k_padded() / 32);
      std::vector<float> x = random_x(sh.K, 500 + (uint32_t)variant, false);
      if (variant % 4 == 1) std::fill(x.begin(), x.begin() + std::min(sh.K, 2 * sh.G), 0.0f);
      if (variant % 4 == 2) for (size_t i = 0; i < x.size(); i += 7) x[i] *= 3e5f;
      if (variant % 4 == 3) for (float& v : x) v *= 1e-30f;
      std::vector<int8_t> qa(ldxq, 1), qb(ldxq, 2);
      std::vector<float> da(n_act, 1), db(n_act, 2), sa(w.n_groups, 1), sb(w.n_groups, 2);
      detail::w4_quantize_x_row_sse2(w, x.data(), qa.data(), da.data(), sa.data(), sub_bytes);
      detail::w4_quantize_x_row_avx512(w, x.data(), qb.data(), db.data(), sb.data(), sub_bytes);
      EXPECT_EQ(qa, qb) << "K=" << sh.K << " G=" << sh.G << " variant " << variant;
      EXPECT_EQ(0, std::memcmp(da.data(), db.data(), da.size() * sizeof(float)));
      EXPECT_EQ(0, std::memcmp(sa.data(), sb.data(), sa.size() * sizeof(float)));
    }
  }
}

// Several matrices on one x (q/k/v, gate/up): each output equals its own w4_matmul bit for bit,
// fused (same K and group size: x quantized once, one parallel region) or not (different K, or
// M above the decode limit: one call per matrix), with and without bias.
TEST_F(W4MatmulI8, MultiEqualsSeparateCallsBitExact) {
  struct Shape {
    int K, N, G;
  };
  const std::vector<std::vector<Shape>> sets = {
      {{576, 576, 64}, {576, 192, 64}, {576, 192, 64}},  // q, k, v of SmolLM2
      {{576, 1536, 64}, {576, 1536, 64}},                // gate, up
      {{192, 64, 64}, {256, 32, 128}},                   // different K: not fused
      {{160, 40, 160}, {160, 24, 160}},                  // per-channel, padded groups
  };
  for (const auto& set : sets) {
    std::vector<W4Matrix> ws;
    std::vector<std::vector<float>> biases;
    for (size_t i = 0; i < set.size(); ++i) {
      const Shape& sh = set[i];
      ws.push_back(make_w4(random_codes(sh.K, sh.N, sh.G, 900 + (uint32_t)i + sh.N, false)));
      biases.push_back(i == 1 ? std::vector<float>() : random_x(sh.N, 40 + (uint32_t)i, false));
    }
    const int K = set[0].K;
    for (int M : {1, 4, 33, 70}) {
      if (M > 64) w4_set_decode_max_m(-1);  // the prefill path for M above the default limit
      const std::vector<float> x = random_x((size_t)M * K, 4100 + (uint32_t)M, false);
      // (the different-K set reads a prefix of x for its second matrix: rows of K values each)
      std::vector<std::vector<float>> want(set.size()), got(set.size());
      std::vector<W4Out> outs;
      for (size_t i = 0; i < set.size(); ++i) {
        const float* b = biases[i].empty() ? nullptr : biases[i].data();
        want[i].assign((size_t)M * set[i].N, NAN);
        got[i].assign((size_t)M * set[i].N, NAN);
        if (set[i].K != K) continue;
        w4_matmul(ws[i], x.data(), M, want[i].data(), b);
        outs.push_back({&ws[i], got[i].data(), b});
      }
      w4_matmul_multi(outs.data(), (int)outs.size(), x.data(), M);
      for (size_t i = 0; i < set.size(); ++i) {
        if (set[i].K == K) {
          ASSERT_EQ(0, std::memcmp(want[i].data(), got[i].data(), want[i].size() * sizeof(float)))
              << "set K=" << K << " matrix " << i << " M=" << M;
        }
      }
      w4_set_decode_max_m(64);
    }
  }
}

// The AVX2 I8 kernel performs the scalar integer reference's fp32 operations in its order (exact
// int32 block dots, then mul/add per block and per group), so it equals it bit for bit on any data.
TEST_F(W4MatmulI8, Avx2EqualsScalarBitExact) {
  if (!w4_isa_available(Isa::Avx2)) GTEST_SKIP() << "no AVX2";
  for (const MatmulCase& mc : kCases) {
    const Codes c = random_codes(mc.K, mc.N, mc.group_size, 800 + mc.K + mc.N, false);
    const W4Matrix w = make_w4(c);
    const std::vector<float> bias = random_x(c.N, 13, false);
    for (int M : {1, 2, 5, 33}) {
      const std::vector<float> x = random_x((size_t)M * c.K, 6000 + M, false);
      std::vector<float> ys((size_t)M * c.N, NAN), ya((size_t)M * c.N, NAN);
      w4_matmul_isa(Isa::Scalar, W4Decode::I8, w, x.data(), M, ys.data(), bias.data());
      w4_matmul_isa(Isa::Avx2, W4Decode::I8, w, x.data(), M, ya.data(), bias.data());
      for (size_t i = 0; i < ys.size(); ++i)
        ASSERT_EQ(0, std::memcmp(&ys[i], &ya[i], sizeof(float)))
            << "K=" << c.K << " N=" << c.N << " G=" << mc.group_size << " M=" << M
            << " m=" << i / c.N << " n=" << i % c.N << ": scalar " << ys[i] << " avx2 " << ya[i];
    }
  }
}

// Random data: every ISA (scalar = the integer reference) agrees with the double evaluation of
// W * x^ (x^ = the quantized activations, computed by the test) within the fp32 bound of the
// F32 tests; and with the exact W * x within the quantization error bound
//   sum_k |w_k| * (d_k / 2 + 2 eps |x_k|)   (rounding to the grid d, plus the 1-ulp error of
//   the reciprocal scale) + the fp32 bound.
TEST_F(W4MatmulI8, RandomDataWithinQuantizationBound) {
  double worst_ratio = 0, err2 = 0, ref2 = 0;
  for (const MatmulCase& mc : kCases) {
    const Codes c = random_codes(mc.K, mc.N, mc.group_size, 400 + mc.K * 3 + mc.N, false);
    const W4Matrix w = make_w4(c);
    const std::vector<float> bias = random_x(c.N, 10, false);
    for (int M : kBatches) {
      const std::vector<float> x = random_x((size_t)M * c.K, 4000 + M, false);
      const QuantizedX qx = quantize_x(c, x, M);
      std::vector<float> xhat_f(qx.xhat.begin(), qx.xhat.end());  // exact: d * q is a float
      const std::vector<double> want_q = reference(c, xhat_f, M, bias);
      const std::vector<double> want = reference(c, x, M, bias);
      for (Isa isa : w4_available_isas()) {
        std::vector<float> y((size_t)M * c.N, NAN);
        w4_matmul_isa(isa, W4Decode::I8, w, x.data(), M, y.data(), bias.data());
        for (int m = 0; m < M; ++m)
          for (int n = 0; n < c.N; ++n) {
            const size_t i = (size_t)m * c.N + n;
            const double tol_fp = tolerance(c, xhat_f.data() + (size_t)m * c.K, n, bias[n]);
            ASSERT_NEAR(y[i], want_q[i], tol_fp)
                << isa_label(isa) << " K=" << c.K << " N=" << c.N << " G=" << mc.group_size
                << " M=" << M << " m=" << m << " n=" << n;
            double bound = tol_fp;
            for (int k = 0; k < c.K; ++k) {
              const size_t mk = (size_t)m * c.K + k;
              bound += std::fabs(c.w(n, k)) * (0.5 * qx.d[mk] + 2 * FLT_EPSILON * std::fabs(x[mk]));
            }
            const double err = std::fabs(y[i] - want[i]);
            ASSERT_LE(err, bound) << isa_label(isa) << " K=" << c.K << " N=" << c.N
                                  << " G=" << mc.group_size << " M=" << M << " m=" << m
                                  << " n=" << n;
            worst_ratio = std::max(worst_ratio, err / bound);
            err2 += err * err;
            ref2 += (want[i] - bias[n]) * (want[i] - bias[n]);
          }
      }
    }
  }
  // Informational: how close to the bound the data came, and the relative RMS error.
  std::printf("I8 vs exact: worst |err| / bound = %.3f, relative RMS error = %.5f\n", worst_ratio,
              std::sqrt(err2 / ref2));
}

TEST(W4Matmul, NoBiasAndDispatchAgree) {
  const Codes c = random_codes(576, 72, 64, 42, true);
  const W4Matrix w = make_w4(c);
  const std::vector<float> x = lossless_i8_x(c, 3, 43);  // exact for both decode modes
  const std::vector<float> zero(72, 0.0f);
  const std::vector<double> want = reference(c, x, 3, zero);
  std::vector<float> y(3 * 72);
  w4_matmul(w, x.data(), 3, y.data());
  for (size_t i = 0; i < y.size(); ++i) ASSERT_EQ((double)y[i], want[i]) << i;
}

// The exact tests above must be able to fail: flipping one code changes the output, in both
// decode modes (the I8 data is lossless, so both are exact).
TEST(W4Matmul, SingleCodeChangeIsDetected) {
  Codes c = random_codes(384, 24, 128, 77, true);
  const std::vector<float> x = lossless_i8_x(c, 1, 78);
  const std::vector<float> zero(24, 0.0f);
  const std::vector<double> want = reference(c, x, 1, zero);
  int k = 300;  // row 13, first k >= 300 where x is nonzero
  while (x[k] == 0.0f) ++k;
  c.q[(size_t)13 * 384 + k] ^= 1;
  const W4Matrix w = make_w4(c);
  for (Isa isa : w4_available_isas())
    for (W4Decode mode : {W4Decode::F32, W4Decode::I8}) {
      std::vector<float> y(24);
      w4_matmul_isa(isa, mode, w, x.data(), 1, y.data());
      EXPECT_NE((double)y[13], want[13]) << isa_label(isa) << " " << decode_name(mode);
      EXPECT_EQ((double)y[12], want[12]) << isa_label(isa) << " " << decode_name(mode);
    }
}

// ---------------------------------------------------------------------------------------------
// Dispatch

TEST(W4Dispatch, AvailableAndActive) {
  const auto isas = w4_available_isas();
  ASSERT_FALSE(isas.empty());
  EXPECT_EQ(isas.front(), Isa::Scalar);
  EXPECT_TRUE(w4_isa_available(w4_active_isa()));
  EXPECT_STREQ(isa_name(Isa::Avx2), "avx2");
}

// Every ISA test above runs only the ISAs dispatch reports: cross-check that detection against
// the compiler's own CPUID reading (libgcc, which also checks the OS-enabled register state), so
// a host that has AVX2 / AVX-512 cannot silently skip those kernels.
TEST(W4Dispatch, DetectionAgreesWithCompilerCpuid) {
  __builtin_cpu_init();
  const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
                    __builtin_cpu_supports("f16c") && __builtin_cpu_supports("bmi2");
  const bool avx512 = avx2 && __builtin_cpu_supports("avx512f") &&
                      __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
                      __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vnni") &&
                      __builtin_cpu_supports("avx512bf16");
  EXPECT_EQ(w4_isa_available(Isa::Avx2), avx2);
  EXPECT_EQ(w4_isa_available(Isa::Avx512), avx512);
  std::string tested;
  for (Isa isa : w4_available_isas()) tested += std::string(" ") + isa_name(isa);
  std::printf("W4 ISAs tested on this host:%s\n", tested.c_str());
}

TEST(W4Dispatch, EnvRequestResolution) {
  std::string warn;
  EXPECT_EQ(detail::w4_resolve_isa("scalar", &warn), Isa::Scalar);
  EXPECT_TRUE(warn.empty());
  EXPECT_EQ(detail::w4_resolve_isa("SCALAR", &warn), Isa::Scalar);
  const Isa best = w4_available_isas().back();
  EXPECT_EQ(detail::w4_resolve_isa(nullptr, &warn), best);
  EXPECT_EQ(detail::w4_resolve_isa("neon", &warn), best);
  EXPECT_NE(warn.find("not one of"), std::string::npos) << warn;
  warn.clear();
  const Isa got = detail::w4_resolve_isa("avx512", &warn);
  if (w4_isa_available(Isa::Avx512)) {
    EXPECT_EQ(got, Isa::Avx512);
    EXPECT_TRUE(warn.empty());
  } else {
    EXPECT_EQ(got, best);
    EXPECT_NE(warn.find("falling back"), std::string::npos) << warn;
  }
}

TEST(W4Dispatch, DecodeModeResolution) {
  std::string warn;
  EXPECT_EQ(detail::w4_resolve_decode("f32", &warn), W4Decode::F32);
  EXPECT_EQ(detail::w4_resolve_decode("I8", &warn), W4Decode::I8);
  EXPECT_EQ(detail::w4_resolve_decode(nullptr, &warn), W4Decode::I8);
  EXPECT_TRUE(warn.empty());
  EXPECT_EQ(detail::w4_resolve_decode("int4", &warn), W4Decode::I8);
  EXPECT_NE(warn.find("not one of f32|i8"), std::string::npos) << warn;
  EXPECT_STREQ(decode_name(W4Decode::F32), "f32");
}

// ---------------------------------------------------------------------------------------------
// fp32 helper

TEST(Sgemm, NtMatchesNaive) {
  const int M = 5, N = 7, K = 33;
  const std::vector<float> A = random_x(M * K, 1, true), B = random_x(N * K, 2, true);
  std::vector<float> C(M * N, 1.0f);
  sgemm_nt(M, N, K, A.data(), B.data(), C.data(), 0.5f);
  for (int m = 0; m < M; ++m)
    for (int n = 0; n < N; ++n) {
      double acc = 0.5;
      for (int k = 0; k < K; ++k) acc += (double)A[m * K + k] * B[n * K + k];
      EXPECT_EQ((double)C[m * N + n], acc);  // exact: 1/8-grid inputs
    }
}

}  // namespace
}  // namespace awq
