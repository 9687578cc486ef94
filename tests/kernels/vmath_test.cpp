// Vector math (kernels/vmath.h): every build the host has against double-precision references.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "kernels/vmath.h"
#include "kernels/w4.h"

namespace awq {
namespace {

std::vector<detail::VmathKernels> builds() {
  std::vector<detail::VmathKernels> k{detail::vmath_kernels_ref()};
  if (w4_isa_available(Isa::Avx2)) k.push_back(detail::vmath_kernels_avx2());
  return k;
}

TEST(Vmath, ExpRelativeErrorOverTheClampedRange) {
  double worst = 0;
  for (float x = -87.0f; x <= 88.0f; x += 0.0137f) {
    const double ref = std::exp((double)x);
    worst = std::max(worst, std::fabs(vexp(x) - ref) / ref);
  }
  EXPECT_LT(worst, 5e-7);
  EXPECT_EQ(vexp(-1000.0f), vexp(-87.0f));  // clamped, finite, positive
  EXPECT_GT(vexp(-1000.0f), 0.0f);
  EXPECT_TRUE(std::isfinite(vexp(1000.0f)));
}

TEST(Vmath, SoftmaxRowMatchesDoubleReferenceAndZeroesMaskedTail) {
  std::mt19937 rng(7);
  std::normal_distribution<float> nd(0.0f, 4.0f);
  for (const auto& k : builds())
    for (int n_vis : {1, 3, 7, 8, 9, 31, 64, 200, 1025}) {
      const int n_total = n_vis + 13;
      std::vector<float> row(n_total);
      for (auto& v : row) v = nd(rng);
      std::vector<double> ref(n_vis);
      double mx = -INFINITY, sum = 0;
      for (int j = 0; j < n_vis; ++j) mx = std::max(mx, (double)row[j]);
      for (int j = 0; j < n_vis; ++j) sum += ref[j] = std::exp(row[j] - mx);
      k.softmax_row(row.data(), n_vis, n_total);
      for (int j = 0; j < n_vis; ++j) EXPECT_NEAR(row[j], ref[j] / sum, 2e-6 * ref[j] / sum + 1e-12) << n_vis;
      for (int j = n_vis; j < n_total; ++j) EXPECT_EQ(row[j], 0.0f);
    }
}

TEST(Vmath, SiluMulMatchesDoubleReference) {
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> ud(-30.0f, 30.0f);
  for (const auto& k : builds())
    for (int n : {1, 5, 8, 13, 1000}) {
      std::vector<float> g(n), u(n), u0;
      for (auto& v : g) v = ud(rng);
      for (auto& v : u) v = ud(rng);
      u0 = u;
      k.silu_mul(g.data(), u.data(), n);
      for (int i = 0; i < n; ++i) {
        const double ref = u0[i] * (double)g[i] / (1.0 + std::exp(-(double)g[i]));
        EXPECT_NEAR(u[i], ref, 1e-6 * std::fabs(ref) + 1e-30) << i;
      }
    }
}

TEST(Vmath, LogSumExpMatchesDoubleReference) {
  std::mt19937 rng(11);
  std::normal_distribution<float> nd(0.0f, 6.0f);
  for (const auto& k : builds())
    for (int n : {1, 7, 8, 100, 49152}) {
      std::vector<float> x(n);
      for (auto& v : x) v = nd(rng);
      double mx = -INFINITY, s = 0;
      for (float v : x) mx = std::max(mx, (double)v);
      for (float v : x) s += std::exp(v - mx);
      float got_max = 0;
      EXPECT_NEAR(k.log_sum_exp(x.data(), n, &got_max), mx + std::log(s), 1e-6) << n;
      EXPECT_EQ(got_max, (float)mx);
    }
}

}  // namespace
}  // namespace awq
