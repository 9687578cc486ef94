// fp16-weight matmul (kernels/f16_matmul.h): every build the host has against a double
// reference on the same fp16 weights, over awkward shapes.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "core/half.h"
#include "kernels/f16_matmul.h"
#include "kernels/w4.h"

namespace awq {
namespace {

TEST(F16Matmul, MatchesDoubleReferenceForEveryBuild) {
  std::vector<detail::F16RowsFn> builds{detail::f16_rows_ref()};
  if (w4_isa_available(Isa::Avx2)) builds.push_back(detail::f16_rows_avx2());
  std::mt19937 rng(21);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  for (auto fn : builds)
    for (int K : {1, 7, 8, 63, 576})
      for (int N : {1, 5, 257, 600})
        for (int M : {1, 2, 3, 8, 9, 17}) {
          std::vector<uint16_t> w((size_t)N * K);
          for (auto& v : w) v = f32_to_fp16(nd(rng) * 0.1f);
          std::vector<float> x((size_t)M * K), y((size_t)M * N, NAN);
          for (auto& v : x) v = nd(rng);
          detail::f16_matmul_with(fn, w.data(), N, K, x.data(), M, y.data());
          for (int m = 0; m < M; ++m)
            for (int n = 0; n < N; ++n) {
              double ref = 0, mag = 0;
              for (int k = 0; k < K; ++k) {
                const double p = (double)fp16_to_f32(w[(size_t)n * K + k]) * x[(size_t)m * K + k];
                ref += p;
                mag += std::fabs(p);
              }
              ASSERT_NEAR(y[(size_t)m * N + n], ref, 1e-5 * mag + 1e-6)
                  << "K=" << K << " N=" << N << " M=" << M << " m=" << m << " n=" << n;
            }
        }
}

TEST(F16Matmul, DispatchedEntryPointAgreesWithTheReferenceBuild) {
  std::mt19937 rng(4);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  const int N = 1000, K = 100, M = 3;
  std::vector<uint16_t> w((size_t)N * K);
  for (auto& v : w) v = f32_to_fp16(nd(rng));
  std::vector<float> x((size_t)M * K), a((size_t)M * N), b((size_t)M * N);
  for (auto& v : x) v = nd(rng);
  f16_matmul(w.data(), N, K, x.data(), M, a.data());
  detail::f16_matmul_with(detail::f16_rows_ref(), w.data(), N, K, x.data(), M, b.data());
  for (size_t i = 0; i < a.size(); ++i) EXPECT_NEAR(a[i], b[i], 1e-3) << i;
}

}  // namespace
}  // namespace awq
