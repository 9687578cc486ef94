// AVX2 + FMA build of the vector math (kernels/vmath.h): 8 lanes, same polynomial as the
// portable build (results differ from it only by FMA rounding).
#include <immintrin.h>

#include <algorithm>
#include <cmath>

#include "kernels/vmath.h"

namespace awq {
namespace {

inline __m256 exp8(__m256 x) {
  x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-87.0f)), _mm256_set1_ps(88.0f));
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
  r = _mm256_fmadd_ps(n, _mm256_set1_ps(2.12194440e-4f), r);
  __m256 p = _mm256_set1_ps(1.9875691500e-4f);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
  p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
  const __m256i e = _mm256_slli_epi32(
      _mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}

inline float hmax(__m256 v) {
  __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  m = _mm_max_ps(m, _mm_movehl_ps(m, m));
  m = _mm_max_ss(m, _mm_shuffle_ps(m, m, 1));
  return _mm_cvtss_f32(m);
}

inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
  return _mm_cvtss_f32(s);
}

// Tail lanes [0, rem) of x, the rest `fill`.
inline __m256 load_tail(const float* x, int rem, float fill) {
  alignas(32) float buf[8];
  for (int j = 0; j < 8; ++j) buf[j] = j < rem ? x[j] : fill;
  return _mm256_load_ps(buf);
}

inline void store_tail(float* x, int rem, __m256 v) {
  alignas(32) float buf[8];
  _mm256_store_ps(buf, v);
  for (int j = 0; j < rem; ++j) x[j] = buf[j];
}

float max_avx2(const float* x, int n) {
  __m256 m = _mm256_set1_ps(-INFINITY);
  int j = 0;
  for (; j + 8 <= n; j += 8) m = _mm256_max_ps(m, _mm256_loadu_ps(x + j));
  if (j < n) m = _mm256_max_ps(m, load_tail(x + j, n - j, -INFINITY));
  return hmax(m);
}

void softmax_row_avx2(float* row, int n_vis, int n_total) {
  const __m256 mx = _mm256_set1_ps(max_avx2(row, n_vis));
  __m256 acc = _mm256_setzero_ps();
  int j = 0;
  for (; j + 8 <= n_vis; j += 8) {
    const __m256 e = exp8(_mm256_sub_ps(_mm256_loadu_ps(row + j), mx));
    _mm256_storeu_ps(row + j, e);
    acc = _mm256_add_ps(acc, e);
  }
  const int rem = n_vis - j;
  __m256 tail = _mm256_setzero_ps();
  if (rem > 0) {
    const __m256 mask = _mm256_castsi256_ps(_mm256_cmpgt_epi32(
        _mm256_set1_epi32(rem), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7)));
    tail = _mm256_and_ps(exp8(_mm256_sub_ps(load_tail(row + j, rem, 0.0f), mx)), mask);
    acc = _mm256_add_ps(acc, tail);
  }
  const __m256 inv = _mm256_set1_ps(1.0f / hsum(acc));
  int i = 0;
  for (; i + 8 <= j; i += 8) _mm256_storeu_ps(row + i, _mm256_mul_ps(_mm256_loadu_ps(row + i), inv));
  if (rem > 0) store_tail(row + j, rem, _mm256_mul_ps(tail, inv));
  std::fill(row + n_vis, row + std::max(n_vis, n_total), 0.0f);
}

void silu_mul_avx2(const float* g, float* u, int64_t n) {
  const __m256 one = _mm256_set1_ps(1.0f);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 gv = _mm256_loadu_ps(g + i);
    const __m256 e = exp8(_mm256_sub_ps(_mm256_setzero_ps(), gv));
    const __m256 s = _mm256_div_ps(gv, _mm256_add_ps(one, e));
    _mm256_storeu_ps(u + i, _mm256_mul_ps(_mm256_loadu_ps(u + i), s));
  }
  if (i < n) {
    const int rem = (int)(n - i);
    const __m256 gv = load_tail(g + i, rem, 0.0f);
    const __m256 s = _mm256_div_ps(gv, _mm256_add_ps(one, exp8(_mm256_sub_ps(_mm256_setzero_ps(), gv))));
    store_tail(u + i, rem, _mm256_mul_ps(load_tail(u + i, rem, 0.0f), s));
  }
}

double log_sum_exp_avx2(const float* x, int n, float* max_out) {
  const float mxs = max_avx2(x, n);
  const __m256 mx = _mm256_set1_ps(mxs);
  double total = 0.0;
  int j = 0;
  // Float lanes summed over at most 1024 elements (each term <= 1), then added in double.
  while (j + 8 <= n) {
    __m256 acc = _mm256_setzero_ps();
    const int end = std::min(n - (n - j) % 8, j + 1024);
    for (; j < end; j += 8) acc = _mm256_add_ps(acc, exp8(_mm256_sub_ps(_mm256_loadu_ps(x + j), mx)));
    total += (double)hsum(acc);
  }
  if (j < n) {
    const int rem = n - j;
    const __m256 mask = _mm256_castsi256_ps(_mm256_cmpgt_epi32(
        _mm256_set1_epi32(rem), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7)));
    total += (double)hsum(_mm256_and_ps(exp8(_mm256_sub_ps(load_tail(x + j, rem, 0.0f), mx)), mask));
  }
  if (max_out) *max_out = mxs;
  return (double)mxs + std::log(total);
}

}  // namespace

namespace detail {
VmathKernels vmath_kernels_avx2() { return {softmax_row_avx2, silu_mul_avx2, log_sum_exp_avx2}; }
}  // namespace detail

}  // namespace awq
