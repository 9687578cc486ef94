// AVX2 + F16C + FMA build of the fp16-weight matmul (kernels/f16_matmul.h): each weight row is
// read and converted once for up to 8 rows of x.
#include <immintrin.h>

#include "core/half.h"
#include "kernels/f16_matmul.h"

namespace awq {
namespace {

inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
  return _mm_cvtss_f32(s);
}

template <int M>
void rows_m(const uint16_t* w, int K, const float* x, int n0, int n1, float* y, int ldy) {
  const int K8 = K & ~7;
  for (int n = n0; n < n1; ++n) {
    const uint16_t* wr = w + (size_t)n * K;
    __m256 acc[M];
    for (int m = 0; m < M; ++m) acc[m] = _mm256_setzero_ps();
    for (int k = 0; k < K8; k += 8) {
      const __m256 wv = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i*)(wr + k)));
      for (int m = 0; m < M; ++m)
        acc[m] = _mm256_fmadd_ps(wv, _mm256_loadu_ps(x + (size_t)m * K + k), acc[m]);
    }
    for (int m = 0; m < M; ++m) {
      float s = hsum(acc[m]);
      for (int k = K8; k < K; ++k) s += fp16_to_f32(wr[k]) * x[(size_t)m * K + k];
      y[(size_t)m * ldy + n] = s;
    }
  }
}

void f16_rows(const uint16_t* w, int K, const float* x, int M, int n0, int n1, float* y, int ldy) {
  for (int m0 = 0; m0 < M; m0 += 8) {
    const float* xm = x + (size_t)m0 * K;
    float* ym = y + (size_t)m0 * ldy;
    switch (M - m0 >= 8 ? 8 : M - m0) {
      case 1: rows_m<1>(w, K, xm, n0, n1, ym, ldy); break;
      case 2: rows_m<2>(w, K, xm, n0, n1, ym, ldy); break;
      case 3: rows_m<3>(w, K, xm, n0, n1, ym, ldy); break;
      case 4: rows_m<4>(w, K, xm, n0, n1, ym, ldy); break;
      case 5: rows_m<5>(w, K, xm, n0, n1, ym, ldy); break;
      case 6: rows_m<6>(w, K, xm, n0, n1, ym, ldy); break;
      case 7: rows_m<7>(w, K, xm, n0, n1, ym, ldy); break;
      default: rows_m<8>(w, K, xm, n0, n1, ym, ldy); break;
    }
  }
}

}  // namespace

namespace detail {
F16RowsFn f16_rows_avx2() { return f16_rows; }
}  // namespace detail

}  // namespace awq
