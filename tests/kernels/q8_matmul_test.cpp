// 8-bit weight matmul (kernels/q8_matmul.h): the quantizers, every build against an independent
// double evaluation of the integer contract (tight), lossless data (exact), and the q8 result
// against the exact fp32 product within a bound derived from the quantization steps. Shapes with
// K not a multiple of 32 (padding), M = 1..16.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <cstdio>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "core/half.h"
#include "kernels/q8_matmul.h"
#include "kernels/w4.h"

namespace awq {
namespace {

constexpr double kEps = std::numeric_limits<float>::epsilon();

struct Build {
  const char* name;
  detail::Q8RowsFn fn;
};

// Every build this host can run (the AVX-512 one only where CPUID reports it); printed once so a
// capable host cannot skip a build silently.
std::vector<Build> builds() {
  std::vector<Build> b{{"ref", detail::q8_rows_ref()}};
  if (w4_isa_available(Isa::Avx2)) b.push_back({"avx2", detail::q8_rows_avx2()});
  if (w4_isa_available(Isa::Avx512)) b.push_back({"avx512", detail::q8_rows_avx512()});
  static const bool printed = [&] {
    std::printf("Q8 builds tested on this host:");
    for (const Build& e : b) std::printf(" %s", e.name);
    std::printf("\n");
    return true;
  }();
  (void)printed;
  return b;
}

// The test's own activation quantizer (same contract as q8_quantize_x_row, written separately).
void quantize_x(const float* x, int K, int Kp, std::vector<int>& q, std::vector<double>& d) {
  q.assign(Kp, 0);
  d.assign(Kp / 32, 0.0);
  for (int b = 0; b < Kp / 32; ++b) {
    float amax = 0;
    for (int k = 32 * b; k < std::min(K, 32 * b + 32); ++k) amax = std::max(amax, std::fabs(x[k]));
    d[b] = amax / 127.0f;
    const float id = amax > 0 ? 127.0f / amax : 0.0f;
    for (int k = 32 * b; k < std::min(K, 32 * b + 32); ++k) q[k] = (int)std::nearbyint(x[k] * id);
  }
}

std::vector<float> randn(size_t n, std::mt19937& rng, float sd) {
  std::normal_distribution<float> nd(0.0f, sd);
  std::vector<float> v(n);
  for (auto& e : v) e = nd(rng);
  return v;
}

TEST(Q8Quantize, CodesScalesAndPaddingFollowTheContract) {
  std::mt19937 rng(3);
  for (int K : {1, 31, 32, 33, 100, 576}) {
    const int N = 7;
    auto w = randn((size_t)N * K, rng, 0.05f);
    w[0] = 0.0f;
    auto m = q8_from_f32(w.data(), N, K);
    ASSERT_TRUE(m.ok()) << m.error().message;
    ASSERT_EQ(m->k_padded % 32, 0);
    ASSERT_GE(m->k_padded, K);
    ASSERT_LT(m->k_padded, K + 32);
    std::vector<float> back((size_t)N * K);
    q8_dequantize(*m, back.data());
    for (int n = 0; n < N; ++n)
      for (int b = 0; b < m->n_blk(); ++b) {
        float amax = 0;
        int arg = -1;
        for (int k = 32 * b; k < std::min(K, 32 * b + 32); ++k)
          if (std::fabs(w[(size_t)n * K + k]) >= amax) amax = std::fabs(w[(size_t)n * K + k]), arg = k;
        const uint16_t dh = m->scale(n, b);
        const float d = fp16_to_f32(dh), t = amax / 127.0f;
        // the smallest fp16 value >= amax / 127
        EXPECT_GE(d, t) << "n=" << n << " b=" << b;
        if (d > 0) {
          EXPECT_LT(fp16_to_f32((uint16_t)(dh - 1)), t) << "n=" << n << " b=" << b;
        }
        if (d >= 0x1p-14f) {  // normal fp16 scale: the block max maps to +-127
          EXPECT_EQ(std::abs(m->code(n, arg)), 127) << "n=" << n << " b=" << b;
        }
        for (int k = 32 * b; k < 32 * b + 32; ++k) {
          const int q = m->code(n, k);
          ASSERT_LE(std::abs(q), 127);
          if (k >= K) {
            EXPECT_EQ(q, 0) << "padding";
            continue;
          }
          EXPECT_LE(std::fabs(back[(size_t)n * K + k] - w[(size_t)n * K + k]),
                    0.5 * d + 2 * kEps * std::fabs(w[(size_t)n * K + k]))
              << "n=" << n << " k=" << k;
        }
      }
    // fp16 input gives the same codes as its fp32 values
    std::vector<uint16_t> h(w.size());
    std::vector<float> hf(w.size());
    for (size_t i = 0; i < w.size(); ++i) h[i] = f32_to_fp16(w[i]), hf[i] = fp16_to_f32(h[i]);
    auto a = q8_from_f16(h.data(), N, K);
    auto b = q8_from_f32(hf.data(), N, K);
    ASSERT_TRUE(a.ok() && b.ok());
    EXPECT_EQ(a->q, b->q);
    EXPECT_EQ(a->d, b->d);
  }
}

// Blocks whose scale is an fp16 subnormal (amax < 127 * 2^-14): codes are not clipped, the
// error stays within d / 2.
TEST(Q8Quantize, SubnormalScalesKeepTheErrorBound) {
  std::mt19937 rng(8);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  const int N = 50, K = 64;
  std::vector<float> w((size_t)N * K);
  for (int n = 0; n < N; ++n)
    for (int k = 0; k < K; ++k) w[(size_t)n * K + k] = u(rng) * std::ldexp(1.0f, -8 - n % 12);
  auto m = q8_from_f32(w.data(), N, K);
  ASSERT_TRUE(m.ok());
  std::vector<float> back(w.size());
  q8_dequantize(*m, back.data());
  for (int n = 0; n < N; ++n)
    for (int k = 0; k < K; ++k) {
      const float d = fp16_to_f32(m->scale(n, k / 32));
      ASSERT_LE(std::fabs(back[(size_t)n * K + k] - w[(size_t)n * K + k]),
                0.5 * d + 2 * kEps * std::fabs(w[(size_t)n * K + k]))
          << "n=" << n << " k=" << k << " d=" << d;
    }
}

TEST(Q8Quantize, BadInputIsAnError) {
  std::vector<float> w(64, 1.0f);
  EXPECT_FALSE(q8_from_f32(w.data(), 0, 64).ok());
  EXPECT_FALSE(q8_from_f32(w.data(), 2, -1).ok());
  w[37] = NAN;
  auto m = q8_from_f32(w.data(), 2, 32);
  ASSERT_FALSE(m.ok());
  EXPECT_NE(m.error().message.find("[1][5]"), std::string::npos) << m.error().message;
  w[37] = 1e9f;  // amax / 127 > 65504
  m = q8_from_f32(w.data(), 2, 32);
  ASSERT_FALSE(m.ok());
  EXPECT_NE(m.error().message.find("fp16 block scale"), std::string::npos) << m.error().message;
}

TEST(Q8Quantize, ActivationQuantizerMatchesTheContract) {
  std::mt19937 rng(5);
  for (int K : {5, 32, 70, 576}) {
    const int Kp = (K + 31) / 32 * 32;
    auto x = randn(K, rng, 2.0f);
    std::vector<int8_t> xq(Kp, 99);
    std::vector<float> xd(Kp / 32);
    detail::q8_quantize_x_row(x.data(), K, Kp, xq.data(), xd.data());
    std::vector<int> q;
    std::vector<double> d;
    quantize_x(x.data(), K, Kp, q, d);
    for (int k = 0; k < Kp; ++k) ASSERT_EQ(xq[k], q[k]) << "K=" << K << " k=" << k;
    for (int b = 0; b < Kp / 32; ++b) ASSERT_EQ(xd[b], (float)d[b]);
  }
}

struct Case {
  int K, N;
};
const Case kCases[] = {{32, 9}, {37, 16}, {96, 300}, {200, 257}, {576, 513}, {1000, 40}};

// Every build vs a double evaluation of the integer contract from the test's own quantizer;
// every build's result within the quantization bound of the exact fp32 product.
TEST(Q8Matmul, EveryBuildMatchesTheIntegerContractAndTheExactProduct) {
  std::mt19937 rng(11);
  double worst_ratio = 0;
  for (const auto& [name, fn] : builds())
    for (const Case& c : kCases)
      for (int M = 1; M <= 16; M += (M < 5 ? 1 : 5)) {
        const int K = c.K, N = c.N;
        auto w = randn((size_t)N * K, rng, 0.05f);
        auto x = randn((size_t)M * K, rng, 1.0f);
        for (int i = 0; i < M * K; i += 13) x[i] *= 8.0f;  // outliers, as in real activations
        auto q8 = q8_from_f32(w.data(), N, K);
        ASSERT_TRUE(q8.ok());
        std::vector<float> y((size_t)M * N, NAN);
        detail::q8_matmul_with(fn, *q8, x.data(), M, y.data());
        const int Kp = q8->k_padded, nb = q8->n_blk();
        for (int m = 0; m < M; ++m) {
          std::vector<int> xq;
          std::vector<double> xd;
          quantize_x(x.data() + (size_t)m * K, K, Kp, xq, xd);
          for (int n = 0; n < N; ++n) {
            double contract = 0, mag = 0, exact = 0, qbound = 0;
            for (int b = 0; b < nb; ++b) {
              const double dw = fp16_to_f32(q8->scale(n, b));
              const double s = (double)(float)(dw * xd[b]);  // the kernels' fp32 scale product
              long dot = 0, adot = 0;
              for (int k = 32 * b; k < 32 * b + 32; ++k) {
                const int qw = q8->code(n, k);
                dot += (long)qw * xq[k];
                adot += std::labs((long)qw * xq[k]);
                if (k >= K) continue;
                const double wk = w[(size_t)n * K + k], xk = x[(size_t)m * K + k];
                exact += wk * xk;
                // |w - w^| <= dw/2, |x - x^| <= dx/2 + 4 eps |x| (fp32 rounding of dx, 127/amax
                // and x * 127/amax)
                const double ex = xd[b] / 2 + 4 * kEps * std::fabs(xk);
                qbound += dw / 2 * std::fabs(xk) + std::fabs(wk) * ex + dw / 2 * ex;
              }
              contract += s * dot;
              mag += s * adot;
            }
            const double got = y[(size_t)m * N + n];
            const double fp32_bound = 2 * (nb + 8) * kEps * mag + 1e-30;
            ASSERT_NEAR(got, contract, fp32_bound)
                << name << " K=" << K << " N=" << N << " M=" << M << " m=" << m << " n=" << n;
            ASSERT_NEAR(got, exact, qbound + fp32_bound)
                << name << " K=" << K << " N=" << N << " M=" << M << " m=" << m << " n=" << n;
            worst_ratio = std::max(worst_ratio, std::fabs(got - exact) / (qbound + fp32_bound));
          }
        }
      }
  std::printf("q8 vs exact fp32: worst error = %.1f %% of the derived bound\n", 100 * worst_ratio);
}

// Lossless data: weights d_w * q with one |q| = 127 per block, x = q_x / 64 with one |q_x| = 127
// per block, so both quantizations are exact, scales are powers of two and every partial sum is
// an exactly representable fp32 value: every build must equal the double product exactly.
TEST(Q8Matmul, LosslessDataIsExactOnEveryBuild) {
  std::mt19937 rng(17);
  std::uniform_int_distribution<int> code(-127, 127);
  for (const auto& [name, fn] : builds())
    for (const Case& c : kCases)
      for (int M : {1, 2, 3, 4, 5, 8, 16}) {
        const int K = c.K, N = c.N;
        std::vector<float> w((size_t)N * K), x((size_t)M * K);
        for (size_t i = 0; i < w.size(); ++i)
          w[i] = (i % K) % 32 == 0 ? (code(rng) < 0 ? -127.0f : 127.0f) / 256 : code(rng) / 256.0f;
        for (size_t i = 0; i < x.size(); ++i)
          x[i] = (i % K) % 32 == 1 ? (code(rng) < 0 ? -127.0f : 127.0f) / 64 : code(rng) / 64.0f;
        // a block whose only element is the first one (K % 32 == 1) needs the max there
        if (K % 32 == 1)
          for (int m = 0; m < M; ++m) x[(size_t)m * K + K - 1] = 127.0f / 64;
        auto q8 = q8_from_f32(w.data(), N, K);
        ASSERT_TRUE(q8.ok());
        std::vector<float> y((size_t)M * N, NAN);
        detail::q8_matmul_with(fn, *q8, x.data(), M, y.data());
        for (int m = 0; m < M; ++m)
          for (int n = 0; n < N; ++n) {
            double ref = 0;
            for (int k = 0; k < K; ++k) ref += (double)w[(size_t)n * K + k] * x[(size_t)m * K + k];
            ASSERT_EQ(y[(size_t)m * N + n], ref)
                << name << " K=" << K << " N=" << N << " M=" << M << " m=" << m << " n=" << n;
          }
      }
}

TEST(Q8Matmul, DispatchedEntryPointAgreesWithTheReferenceBuild) {
  std::mt19937 rng(4);
  const int N = 1000, K = 100, M = 3;
  auto w = randn((size_t)N * K, rng, 1.0f);
  auto x = randn((size_t)M * K, rng, 1.0f);
  auto q8 = q8_from_f32(w.data(), N, K);
  ASSERT_TRUE(q8.ok());
  std::vector<float> a((size_t)M * N), b((size_t)M * N);
  q8_matmul(*q8, x.data(), M, a.data());
  detail::q8_matmul_with(detail::q8_rows_ref(), *q8, x.data(), M, b.data());
  for (size_t i = 0; i < a.size(); ++i) EXPECT_NEAR(a[i], b[i], 1e-3) << i;
}

// Batch invariance (the server's lm_head): a row of x gives bit-identical logits alone and among
// other rows, on every build.
TEST(Q8Matmul, RowIsBitIdenticalWhateverTheOtherRows) {
  std::mt19937 rng(29);
  const int N = 203, K = 576;
  auto w = randn((size_t)N * K, rng, 0.05f);
  auto q8 = q8_from_f32(w.data(), N, K);
  ASSERT_TRUE(q8.ok());
  const auto row = randn(K, rng, 1.0f);
  for (const auto& [name, fn] : builds()) {
    std::vector<float> alone(N, NAN);
    detail::q8_matmul_with(fn, *q8, row.data(), 1, alone.data());
    for (int M : {2, 16, 33})
      for (int at : {0, M - 1}) {
        auto x = randn((size_t)M * K, rng, 1.0f);
        std::copy(row.begin(), row.end(), x.begin() + (size_t)at * K);
        std::vector<float> y((size_t)M * N, NAN);
        detail::q8_matmul_with(fn, *q8, x.data(), M, y.data());
        ASSERT_EQ(0, std::memcmp(alone.data(), y.data() + (size_t)at * N, sizeof(float) * N))
            << name << " M=" << M << " row at " << at;
      }
  }
}

// q8_matmul runs the active ISA's build: bit-identical to that build called directly. The SIMD
// builds do the same fp32 operations per block in the same order (one FMA of the block's exact
// dot and its scale product into each output, blocks in order), so AVX2 and AVX-512 agree bit
// for bit; the portable build (multiply, then add) differs from them in at least one output.
TEST(Q8Matmul, DispatchedEntryPointRunsTheActiveIsasBuild) {
  const Isa isa = w4_active_isa();
  const std::string want = isa == Isa::Avx512 ? "avx512" : isa == Isa::Avx2 ? "avx2" : "ref";
  std::printf("q8_matmul build for the active ISA (%s): %s\n", isa_name(isa), want.c_str());
  std::mt19937 rng(21);
  const int N = 700, K = 576, M = 5;
  auto w = randn((size_t)N * K, rng, 1.0f);
  auto x = randn((size_t)M * K, rng, 1.0f);
  auto q8 = q8_from_f32(w.data(), N, K);
  ASSERT_TRUE(q8.ok());
  std::vector<float> got((size_t)M * N);
  q8_matmul(*q8, x.data(), M, got.data());
  for (const auto& [name, fn] : builds()) {
    std::vector<float> y((size_t)M * N);
    detail::q8_matmul_with(fn, *q8, x.data(), M, y.data());
    size_t differ = 0;
    for (size_t i = 0; i < y.size(); ++i) differ += y[i] != got[i];
    const bool simd = std::string(name) != "ref";
    if (std::string(name) == want || (simd && want != "ref"))
      EXPECT_EQ(differ, 0u) << name << " vs the dispatched build (" << want << ")";
    else
      EXPECT_GT(differ, 0u) << name << " gives the same bits as the dispatched build";
  }
}

}  // namespace
}  // namespace awq
