// AVX2 build of the 8-bit weight matmul (kernels/q8_matmul.h). One 32-byte load is one block of
// a weight row. s8 x s8 via the sign trick: maddubs(|w|, sign(x, w)) gives pairwise int16 sums
// of w * x (|pair| <= 2 * 127 * 127 = 32258, no saturation since both are in [-127, 127]),
// madd(., 1) widens to 8 int32 lanes, which are converted and accumulated as
// acc += (d_w * dx) * lanes; one horizontal sum per output at the end. Up to 4 rows of x share
// a load of the weight row (more rows re-read it from L1).
#include <immintrin.h>

#include "kernels/q8_matmul.h"

namespace awq {
namespace {

inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
  return _mm_cvtss_f32(s);
}

// Row scales as fp32 (n_blk values from fp16).
inline void row_scales(const uint16_t* d, int nb, float* out) {
  int b = 0;
  for (; b + 8 <= nb; b += 8)
    _mm256_storeu_ps(out + b,
                     _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(d + b))));
  for (; b < nb; ++b) out[b] = _cvtsh_ss(d[b]);
}

template <int MC>
inline void row_mc(const int8_t* wq, const float* wdf, int nb, const int8_t* xq, int ldxq,
                   const float* xd, int ldxd, float* out) {
  const __m256i ones = _mm256_set1_epi16(1);
  __m256 acc[MC];
  for (int m = 0; m < MC; ++m) acc[m] = _mm256_setzero_ps();
  for (int b = 0; b < nb; ++b) {
    const __m256i wv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(wq + 32 * b));
    const __m256i aw = _mm256_sign_epi8(wv, wv);  // |w|
#pragma GCC unroll 4
    for (int m = 0; m < MC; ++m) {
      const __m256i xv =
          _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xq + (size_t)m * ldxq + 32 * b));
      const __m256i p16 = _mm256_maddubs_epi16(aw, _mm256_sign_epi8(xv, wv));
      const __m256 p = _mm256_cvtepi32_ps(_mm256_madd_epi16(p16, ones));
      acc[m] = _mm256_fmadd_ps(p, _mm256_set1_ps(wdf[b] * xd[(size_t)m * ldxd + b]), acc[m]);
    }
  }
  for (int m = 0; m < MC; ++m) out[m] = hsum(acc[m]);
}

void q8_rows(const Q8Matrix& w, const int8_t* xq, const float* xd, int M, int n0, int n1, float* y,
             int ldy) {
  const int Kp = w.k_padded, nb = w.n_blk();
  float wdf[512];  // row scales; larger K in pieces below
  for (int n = n0; n < n1; ++n) {
    const int8_t* wq = w.q.data() + (size_t)n * Kp;
    const uint16_t* wd = w.d.data() + (size_t)n * nb;
    for (int b0 = 0; b0 < nb; b0 += 512) {  // K > 16384: several pieces, summed into y
      const int pb = nb - b0 < 512 ? nb - b0 : 512;
      row_scales(wd + b0, pb, wdf);
      for (int m0 = 0; m0 < M; m0 += 4) {
        const int mc = M - m0 < 4 ? M - m0 : 4;
        float part[4];
        const int8_t* xm = xq + (size_t)m0 * Kp + 32 * (size_t)b0;
        const float* dm = xd + (size_t)m0 * nb + b0;
        switch (mc) {
          case 1: row_mc<1>(wq + 32 * (size_t)b0, wdf, pb, xm, Kp, dm, nb, part); break;
          case 2: row_mc<2>(wq + 32 * (size_t)b0, wdf, pb, xm, Kp, dm, nb, part); break;
          case 3: row_mc<3>(wq + 32 * (size_t)b0, wdf, pb, xm, Kp, dm, nb, part); break;
          default: row_mc<4>(wq + 32 * (size_t)b0, wdf, pb, xm, Kp, dm, nb, part); break;
        }
        for (int m = 0; m < mc; ++m) {
          float& out = y[(size_t)(m0 + m) * ldy + n];
          out = b0 == 0 ? part[m] : out + part[m];
        }
      }
    }
  }
}

}  // namespace

namespace detail {
Q8RowsFn q8_rows_avx2() { return q8_rows; }
}  // namespace detail

}  // namespace awq
