// AVX-512 VNNI build of the 8-bit weight matmul (kernels/q8_matmul.h); compiled with
// -mavx512f/bw/vl/dq/vnni/bf16 -mfma -mf16c -mbmi2 and selected when w4_active_isa() is avx512.
// One 64-byte load = two 32-blocks of a weight row; one vpdpbusd gives 16 int32 lanes, lanes
// 0..7 = block b, 8..15 = block b + 1 (4 products each).
// s8 x s8 via the +128 offset trick: vpdpbusd multiplies u8 by s8, so the activations are
// re-biased once per call to u = q_x + 128 (= q_x ^ 0x80, in [1, 255]) and the weights stay the
// s8 operand. Then sum u * q_w = sum q_x * q_w + 128 * sum q_w, and the correction is per weight
// block only, shared by all rows of x: per weight load, c = vpdpbusd(0, 0x80.., q_w) = 128 * sum
// of each lane's 4 codes, and every row of x starts its vpdpbusd from -c, which leaves exactly
// sum q_x * q_w per lane (|lane| <= 4 * 127 * 127, no overflow anywhere). Cost per row of x and
// block pair: one vpdpbusd (the sign trick would need a masked negate of x as well, AVX-512 has
// no vpsignb on zmm); per weight load: one vpdpbusd + one subtract.
// Scales: per 16 blocks, S = fp32(d_w) * dx (16 lanes; the reference's product, same rounding),
// expanded to the lane pattern of each pair with one vpermps; acc += S_pair * float(lanes).
// One horizontal sum per output at the end. Up to 8 rows of x share each weight load (more rows
// re-read the weight row from L1). Integer contract = ref/q8_ref.cpp: the same exact int32 dot
// per block, scaled by the same fp32 (d_w * dx); only the fp32 order of the outer sum differs.
// GCC 12 reports -W(maybe-)uninitialized inside its own AVX-512 headers (the _mm*_undefined_*
// pass-through operand of plain intrinsics such as _mm512_cvtepi32_ps or the extracts inside
// _mm512_reduce_add_ps; GCC bug 105593).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <immintrin.h>

#include <vector>

#include "kernels/q8_matmul.h"

namespace awq {
namespace {

constexpr int kGroup = 16;  // blocks per scale vector (8 pairs)

// Lane pattern of pair p within a group of 16 blocks: [2p x 8, 2p + 1 x 8].
inline __m512i pair_index(int p) {
  return _mm512_add_epi32(_mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1),
                          _mm512_set1_epi32(2 * p));
}

// Blocks [b0, b0 + nblk) of one weight row (nblk <= 16) for MC rows of x. wq / xu point at
// block b0 (xu rows ldx bytes apart), wd / xd at its scale (xd rows ldd floats apart).
template <int MC, bool kFull>
inline void group_mc(const int8_t* wq, const uint16_t* wd, int nblk, const uint8_t* xu, int ldx,
                     const float* xd, int ldd, __m512* acc) {
  const __mmask16 m16 = kFull ? (__mmask16)0xFFFF : (__mmask16)((1u << nblk) - 1);
  const __m512 dw = _mm512_cvtph_ps(kFull ? _mm256_loadu_si256(reinterpret_cast<const __m256i*>(wd))
                                          : _mm256_maskz_loadu_epi16(m16, wd));
  __m512 s[MC];
#pragma GCC unroll 8
  for (int m = 0; m < MC; ++m)
    s[m] = _mm512_mul_ps(dw, kFull ? _mm512_loadu_ps(xd + (size_t)m * ldd)
                                   : _mm512_maskz_loadu_ps(m16, xd + (size_t)m * ldd));
  const __m512i bias = _mm512_set1_epi8((char)0x80);
  const int npairs = kFull ? kGroup / 2 : (nblk + 1) / 2;
#pragma GCC unroll 8
  for (int p = 0; p < npairs; ++p) {
    // a lone last block (odd nblk): the upper 32 bytes are masked to 0 (w and x), so the
    // upper lanes' dots are 0, and so are their scales
    const bool half = !kFull && 2 * p + 1 == nblk;
    const __mmask64 m64 = half ? (__mmask64)0xFFFFFFFFull : ~(__mmask64)0;
    const __m512i wv =
        half ? _mm512_maskz_loadu_epi8(m64, wq + 64 * p) : _mm512_loadu_si512(wq + 64 * p);
    const __m512i negc = _mm512_sub_epi32(_mm512_setzero_si512(),
                                          _mm512_dpbusd_epi32(_mm512_setzero_si512(), bias, wv));
    const __m512i idx = pair_index(p);
#pragma GCC unroll 8
    for (int m = 0; m < MC; ++m) {
      const uint8_t* xp = xu + (size_t)m * ldx + 64 * p;
      const __m512i xv = half ? _mm512_maskz_loadu_epi8(m64, xp) : _mm512_loadu_si512(xp);
      const __m512i dot = _mm512_dpbusd_epi32(negc, xv, wv);  // exact sum q_x * q_w per lane
      acc[m] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), _mm512_permutexvar_ps(idx, s[m]), acc[m]);
    }
  }
}

// One weight row (codes wq, scales wd) for MC rows of x.
template <int MC>
void row_mc(const int8_t* wq, const uint16_t* wd, int nb, const uint8_t* xu, int ldx,
            const float* xd, int ldd, float* y, int ldy) {
  const int nfull = nb / kGroup * kGroup;
  __m512 acc[MC];
#pragma GCC unroll 8
  for (int m = 0; m < MC; ++m) acc[m] = _mm512_setzero_ps();
  for (int b = 0; b < nfull; b += kGroup)
    group_mc<MC, true>(wq + 32 * (size_t)b, wd + b, kGroup, xu + 32 * (size_t)b, ldx, xd + b, ldd,
                       acc);
  if (nfull < nb)
    group_mc<MC, false>(wq + 32 * (size_t)nfull, wd + nfull, nb - nfull, xu + 32 * (size_t)nfull,
                        ldx, xd + nfull, ldd, acc);
#pragma GCC unroll 8
  for (int m = 0; m < MC; ++m) y[(size_t)m * ldy] = _mm512_reduce_add_ps(acc[m]);
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
  for (int n = n0; n < n1; ++n) {
    const int8_t* wq = w.q.data() + (size_t)n * Kp;
    const uint16_t* wd = w.d.data() + (size_t)n * nb;
    for (int m0 = 0; m0 < M; m0 += 8) {  // M > 8: the weight row is re-read from L1
      const uint8_t* xm = xu + (size_t)m0 * Kp;
      const float* dm = xd + (size_t)m0 * nb;
      float* ym = y + (size_t)m0 * ldy + n;
      switch (M - m0 < 8 ? M - m0 : 8) {
        case 1: row_mc<1>(wq, wd, nb, xm, Kp, dm, nb, ym, ldy); break;
        case 2: row_mc<2>(wq, wd, nb, xm, Kp, dm, nb, ym, ldy); break;
        case 3: row_mc<3>(wq, wd, nb, xm, Kp, dm, nb, ym, ldy); break;
        case 4: row_mc<4>(wq, wd, nb, xm, Kp, dm, nb, ym, ldy); break;
        case 5: row_mc<5>(wq, wd, nb, xm, Kp, dm, nb, ym, ldy); break;
        case 6: row_mc<6>(wq, wd, nb, xm, Kp, dm, nb, ym, ldy); break;
        case 7: row_mc<7>(wq, wd, nb, xm, Kp, dm, nb, ym, ldy); break;
        default: row_mc<8>(wq, wd, nb, xm, Kp, dm, nb, ym, ldy); break;
      }
    }
  }
}

}  // namespace

namespace detail {
Q8RowsFn q8_rows_avx512() { return q8_rows; }
}  // namespace detail

}  // namespace awq
