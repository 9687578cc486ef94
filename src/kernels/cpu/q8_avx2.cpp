// AVX2 build of the 8-bit weight matmul (kernels/q8_matmul.h). One 32-byte load is 4 k
// positions of 8 rows (half of a tile's 64-byte step). s8 x s8 via the sign trick:
// maddubs(|w|, sign(x4, w)), with x4 the row of x's 4 activation bytes broadcast, gives pairwise
// int16 sums of w * x (|pair| <= 2 * 127 * 127 = 32258, no saturation since both are in
// [-127, 127]); madd(., 1) adds the pairs into 8 int32 lanes = the 8 rows' dots. Summed in int32
// over the block (8 steps), then acc += float(dot) * (d_w * dx) for 8 outputs at a time; no
// horizontal sums. Up to 2 rows of x share each weight load (more rows re-read it from L1).
#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "kernels/q8_matmul.h"

namespace awq {
namespace {

inline __m256i bcast4(const int8_t* p) {
  int32_t v;
  std::memcpy(&v, p, sizeof v);
  return _mm256_set1_epi32(v);
}

// Tile t (rows 16 t .. 16 t + rows) for MC (1, 2) rows of x; y points at y[m0][16 t].
template <int MC>
void tile_mc(const Q8Matrix& w, int t, int rows, const int8_t* xq, int ldx, const float* xd,
             int ldd, float* y, int ldy) {
  constexpr int kSteps = Q8Matrix::kBlock / 4;
  const int nb = w.n_blk();
  const __m256i ones = _mm256_set1_epi16(1);
  __m256 acc[MC][2];
  for (int m = 0; m < MC; ++m) acc[m][0] = acc[m][1] = _mm256_setzero_ps();
  for (int b = 0; b < nb; ++b) {
    const int8_t* wc = w.tile_codes(t, b);
    __m256i dot[MC][2];
    for (int m = 0; m < MC; ++m) dot[m][0] = dot[m][1] = _mm256_setzero_si256();
    for (int j = 0; j < kSteps; ++j) {
      __m256i x4[MC];
      for (int m = 0; m < MC; ++m)
        x4[m] = bcast4(xq + (size_t)m * ldx + Q8Matrix::kBlock * (size_t)b + 4 * j);
      for (int h = 0; h < 2; ++h) {
        const __m256i wv = _mm256_load_si256(
            reinterpret_cast<const __m256i*>(wc + j * Q8Matrix::kStepBytes + 32 * h));
        const __m256i aw = _mm256_sign_epi8(wv, wv);  // |w|
        for (int m = 0; m < MC; ++m) {
          const __m256i p16 = _mm256_maddubs_epi16(aw, _mm256_sign_epi8(x4[m], wv));
          dot[m][h] = _mm256_add_epi32(dot[m][h], _mm256_madd_epi16(p16, ones));
        }
      }
    }
    const uint16_t* sc = w.tile_scales(t, b);
    const __m256 dw0 = _mm256_cvtph_ps(_mm_load_si128(reinterpret_cast<const __m128i*>(sc)));
    const __m256 dw1 = _mm256_cvtph_ps(_mm_load_si128(reinterpret_cast<const __m128i*>(sc + 8)));
    for (int m = 0; m < MC; ++m) {
      const __m256 dx = _mm256_set1_ps(xd[(size_t)m * ldd + b]);
      acc[m][0] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot[m][0]), _mm256_mul_ps(dw0, dx), acc[m][0]);
      acc[m][1] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot[m][1]), _mm256_mul_ps(dw1, dx), acc[m][1]);
    }
  }
  for (int m = 0; m < MC; ++m) {
    alignas(32) float out[16];
    _mm256_store_ps(out, acc[m][0]);
    _mm256_store_ps(out + 8, acc[m][1]);
    std::memcpy(y + (size_t)m * ldy, out, sizeof(float) * rows);
  }
}

void q8_rows(const Q8Matrix& w, const int8_t* xq, const float* xd, int M, int n0, int n1, float* y,
             int ldy) {
  const int Kp = w.k_padded, nb = w.n_blk();
  for (int t = n0 / Q8Matrix::kTile; t * Q8Matrix::kTile < n1; ++t) {
    const int r0 = t * Q8Matrix::kTile;
    const int rows = n1 - r0 < Q8Matrix::kTile ? n1 - r0 : Q8Matrix::kTile;
    for (int m0 = 0; m0 < M; m0 += 2) {
      const int8_t* xm = xq + (size_t)m0 * Kp;
      const float* dm = xd + (size_t)m0 * nb;
      float* ym = y + (size_t)m0 * ldy + r0;
      if (M - m0 >= 2)
        tile_mc<2>(w, t, rows, xm, Kp, dm, nb, ym, ldy);
      else
        tile_mc<1>(w, t, rows, xm, Kp, dm, nb, ym, ldy);
    }
  }
}

}  // namespace

namespace detail {
Q8RowsFn q8_rows_avx2() { return q8_rows; }
}  // namespace detail

}  // namespace awq
