// AVX-512 VNNI build of the 8-bit weight matmul (kernels/q8_matmul.h); compiled with
// -mavx512f/bw/vl/dq/vnni/bf16 -mfma -mf16c -mbmi2 and selected when w4_active_isa() is avx512.
// One 64-byte load is 4 k positions of a tile's 16 rows; vpdpbusd against the 4 activation bytes
// broadcast to every lane adds them to 16 int32 lanes = the 16 rows' block dots, so a block of
// 32 k is 8 vpdpbusd per row of x, then one conversion and one FMA for 16 outputs:
// acc += float(dot) * (d_w * dx) with d_w the block's 16 scales. No horizontal sums: lane r of
// acc is output row r of the tile.
// s8 x s8 via the +128 offset trick: vpdpbusd multiplies u8 by s8, so the activations are
// re-biased once per call to u = q_x + 128 (= q_x ^ 0x80, in [1, 255]) and the weights stay the
// s8 operand. Then sum u * q_w = sum q_x * q_w + 128 * sum q_w; per block and tile, c =
// vpdpbusd over the 8 steps of (0x80.., q_w) = 128 * sum of each row's codes, shared by all rows
// of x, and every row of x starts its dots from -c, which leaves exactly sum q_x * q_w per lane
// (|lane| <= 32 * 127 * 127 + 32 * 128 * 127, no overflow). c is computed per tile for all its
// blocks first, so the rows' dot chains do not wait for it.
// Up to 8 rows of x share each weight load (more rows re-read the tile's block from L1).
// Integer contract = ref/q8_ref.cpp: the same exact int32 dot per block, scaled by the same fp32
// (d_w * dx); the outer sum runs over the blocks in order, as the reference's.
// GCC 12 reports -W(maybe-)uninitialized inside its own AVX-512 headers (the _mm*_undefined_*
// pass-through operand of plain intrinsics such as _mm512_cvtepi32_ps; GCC bug 105593).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <immintrin.h>

#include <cstring>
#include <vector>

#include "kernels/q8_matmul.h"

namespace awq {
namespace {

// acc += u8 . s8 per int32 lane (vpdpbusd), in place (GCC 12 copies the accumulator of the
// intrinsic form every iteration; see cpu/w4_avx512.cpp).
inline __m512i dpbusd_acc(__m512i acc, __m512i u8, __m512i s8) {
  asm("vpdpbusd %2, %1, %0" : "+v"(acc) : "v"(u8), "v"(s8));  // AT&T: s8, u8, acc
  return acc;
}

inline __m512i bcast4(const uint8_t* p) {
  int32_t v;
  std::memcpy(&v, p, sizeof v);
  return _mm512_set1_epi32(v);
}

// negc[b] = -128 * (sum of each row's codes in block b) for every block of tile t: computed
// once per tile, outside the rows' dot chains (which start from it).
void tile_offsets(const Q8Matrix& w, int t, __m512i* negc) {
  constexpr int kSteps = Q8Matrix::kBlock / 4;
  const __m512i bias = _mm512_set1_epi8((char)0x80);
  for (int b = 0; b < w.n_blk(); ++b) {
    const int8_t* wc = w.tile_codes(t, b);
    __m512i c0 = _mm512_setzero_si512(), c1 = _mm512_setzero_si512();
#pragma GCC unroll 8
    for (int j = 0; j < kSteps; j += 2) {
      c0 = dpbusd_acc(c0, bias, _mm512_load_si512(wc + j * Q8Matrix::kStepBytes));
      c1 = dpbusd_acc(c1, bias, _mm512_load_si512(wc + (j + 1) * Q8Matrix::kStepBytes));
    }
    negc[b] = _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_add_epi32(c0, c1));
  }
}

// Tile t (rows 16 t .. 16 t + rows) for MC rows of biased x (xu rows ldx bytes apart, xd rows
// ldd scales apart); y points at y[m0][16 t]. kPre: start the dots from the tile's offsets
// (tile_offsets); otherwise c is computed here per block, on a chain of its own beside the rows'
// dots, and subtracted at the end (cheaper when one pass over the tile serves only 1-7 rows).
template <int MC, bool kPre>
void tile_mc(const Q8Matrix& w, int t, int rows, const __m512i* negc, const uint8_t* xu, int ldx,
             const float* xd, int ldd, float* y, int ldy) {
  constexpr int kSteps = Q8Matrix::kBlock / 4;
  const int nb = w.n_blk();
  const __m512i bias = _mm512_set1_epi8((char)0x80);
  __m512 acc[MC];
#pragma GCC unroll 8
  for (int m = 0; m < MC; ++m) acc[m] = _mm512_setzero_ps();
  for (int b = 0; b < nb; ++b) {
    const int8_t* wc = w.tile_codes(t, b);
    __m512i dot[MC], c = _mm512_setzero_si512();
#pragma GCC unroll 8
    for (int m = 0; m < MC; ++m) dot[m] = kPre ? negc[b] : _mm512_setzero_si512();
#pragma GCC unroll 8
    for (int j = 0; j < kSteps; ++j) {
      const __m512i wv = _mm512_load_si512(wc + j * Q8Matrix::kStepBytes);
      if constexpr (!kPre) c = dpbusd_acc(c, bias, wv);
      const uint8_t* xk = xu + Q8Matrix::kBlock * (size_t)b + 4 * j;
#pragma GCC unroll 8
      for (int m = 0; m < MC; ++m) dot[m] = dpbusd_acc(dot[m], bcast4(xk + (size_t)m * ldx), wv);
    }
    if constexpr (!kPre)
#pragma GCC unroll 8
      for (int m = 0; m < MC; ++m) dot[m] = _mm512_sub_epi32(dot[m], c);
    const __m512 dw = _mm512_cvtph_ps(
        _mm256_load_si256(reinterpret_cast<const __m256i*>(w.tile_scales(t, b))));
#pragma GCC unroll 8
    for (int m = 0; m < MC; ++m)
      acc[m] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot[m]),
                               _mm512_mul_ps(dw, _mm512_set1_ps(xd[(size_t)m * ldd + b])), acc[m]);
  }
  const __mmask16 keep = rows >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << rows) - 1);
#pragma GCC unroll 8
  for (int m = 0; m < MC; ++m) _mm512_mask_storeu_ps(y + (size_t)m * ldy, keep, acc[m]);
}

void q8_rows(const Q8Matrix& w, const int8_t* xq, const float* xd, int M, int n0, int n1, float* y,
             int ldy) {
  const int Kp = w.k_padded, nb = w.n_blk();
  // u = q_x + 128 for all M rows, once per call (M * Kp bytes; the call covers a chunk of 256
  // weight rows, so this is < 1 % of the work).
  thread_local std::vector<uint8_t, AlignedAllocator<uint8_t>> xu_buf;
  const size_t nx = (size_t)M * Kp;  // a multiple of 32
  if (xu_buf.size() < nx) xu_buf.resize(nx);
  uint8_t* xu = xu_buf.data();
  const __m256i bias = _mm256_set1_epi8((char)0x80);
  for (size_t i = 0; i < nx; i += 32)
    _mm256_storeu_si256(
        reinterpret_cast<__m256i*>(xu + i),
        _mm256_xor_si256(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(xq + i)), bias));
  thread_local std::vector<__m512i, AlignedAllocator<__m512i>> negc_buf;
  if (negc_buf.size() < (size_t)nb) negc_buf.resize(nb);
  __m512i* negc = negc_buf.data();
  for (int t = n0 / Q8Matrix::kTile; t * Q8Matrix::kTile < n1; ++t) {
    const int r0 = t * Q8Matrix::kTile;
    const int rows = n1 - r0 < Q8Matrix::kTile ? n1 - r0 : Q8Matrix::kTile;
    const bool pre = M >= 8;  // the offsets serve at least one full pass of 8 rows
    if (pre) tile_offsets(w, t, negc);
    for (int m0 = 0; m0 < M; m0 += 8) {  // M > 8: the tile's blocks are re-read from L1
      const uint8_t* xm = xu + (size_t)m0 * Kp;
      const float* dm = xd + (size_t)m0 * nb;
      float* ym = y + (size_t)m0 * ldy + r0;
      switch (M - m0 < 8 ? M - m0 : 8) {
        case 1: tile_mc<1, false>(w, t, rows, negc, xm, Kp, dm, nb, ym, ldy); break;
        case 2: tile_mc<2, false>(w, t, rows, negc, xm, Kp, dm, nb, ym, ldy); break;
        case 3: tile_mc<3, false>(w, t, rows, negc, xm, Kp, dm, nb, ym, ldy); break;
        case 4: tile_mc<4, false>(w, t, rows, negc, xm, Kp, dm, nb, ym, ldy); break;
        // a partial pass after full ones reuses the tile's offsets
        case 5: pre ? tile_mc<5, true>(w, t, rows, negc, xm, Kp, dm, nb, ym, ldy)
                    : tile_mc<5, false>(w, t, rows, negc, xm, Kp, dm, nb, ym, ldy); break;
        case 6: pre ? tile_mc<6, true>(w, t, rows, negc, xm, Kp, dm, nb, ym, ldy)
                    : tile_mc<6, false>(w, t, rows, negc, xm, Kp, dm, nb, ym, ldy); break;
        case 7: pre ? tile_mc<7, true>(w, t, rows, negc, xm, Kp, dm, nb, ym, ldy)
                    : tile_mc<7, false>(w, t, rows, negc, xm, Kp, dm, nb, ym, ldy); break;
        default: tile_mc<8, true>(w, t, rows, negc, xm, Kp, dm, nb, ym, ldy); break;
      }
    }
  }
}

}  // namespace

namespace detail {
Q8RowsFn q8_rows_avx512() { return q8_rows; }
}  // namespace detail

}  // namespace awq
