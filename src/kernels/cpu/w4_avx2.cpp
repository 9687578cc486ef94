// AVX2 + FMA W4 kernels (compiled with -mavx2 -mfma -mf16c -mbmi2; selected at run time).
// Layout and the masking trick: see kernels/w4.h. A k-block is 8 consecutive code words = 8 rows
// x 8 k; row r of the block is  cvt(words & (0xF << 4r)),  a vector along k.
#include <immintrin.h>

#include <cstring>

#include "kernels/cpu/w4_kernels.h"

namespace awq::detail {
namespace {

alignas(32) constexpr uint32_t kMasks[8][8] = {
#define AWQ_MASK_ROW(r)                                                                  \
  {                                                                                      \
    0xFu << (4 * r), 0xFu << (4 * r), 0xFu << (4 * r), 0xFu << (4 * r), 0xFu << (4 * r), \
        0xFu << (4 * r), 0xFu << (4 * r), 0xFu << (4 * r)                                \
  }
    AWQ_MASK_ROW(0), AWQ_MASK_ROW(1), AWQ_MASK_ROW(2), AWQ_MASK_ROW(3),
    AWQ_MASK_ROW(4), AWQ_MASK_ROW(5), AWQ_MASK_ROW(6), AWQ_MASK_ROW(7)};
#undef AWQ_MASK_ROW

// 16^-i: undoes the weight of nibble i after masking (2^-28 for the signed top nibble).
alignas(32) constexpr float kInvNibbleWeight[8] = {1.0f,     0x1p-4f,  0x1p-8f,  0x1p-12f,
                                                   0x1p-16f, 0x1p-20f, 0x1p-24f, 0x1p-28f};

// Per-row factors of one group (see w4.h): sf = s * 16^-i, zs = -zero * s (both exact).
inline void group_factors(const W4GroupHeader* h, __m256* sf, __m256* zs) {
  const __m256 s = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(h->scale)));
  const __m256 z = _mm256_cvtepi32_ps(
      _mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(h->zero))));
  *sf = _mm256_mul_ps(s, _mm256_load_ps(kInvNibbleWeight));
  *zs = _mm256_mul_ps(_mm256_sub_ps(_mm256_setzero_ps(), z), s);
}

inline __m256i mask(int r) {
  return _mm256_load_si256(reinterpret_cast<const __m256i*>(kMasks[r]));
}

// Lane r of the result = horizontal sum of v[r] (8 vectors -> one).
inline __m256 reduce8(const __m256* v) {
  const __m256 b0 = _mm256_hadd_ps(_mm256_hadd_ps(v[0], v[1]), _mm256_hadd_ps(v[2], v[3]));
  const __m256 b1 = _mm256_hadd_ps(_mm256_hadd_ps(v[4], v[5]), _mm256_hadd_ps(v[6], v[7]));
  return _mm256_add_ps(_mm256_permute2f128_ps(b0, b1, 0x20), _mm256_permute2f128_ps(b0, b1, 0x31));
}

// out[r] = horizontal sum of v[r], r < RP (RP = 1, 2 or 4).
template <int RP>
inline void reduce_rows(const __m256* v, float* out) {
  if constexpr (RP == 4) {
    const __m256 b = _mm256_hadd_ps(_mm256_hadd_ps(v[0], v[1]), _mm256_hadd_ps(v[2], v[3]));
    _mm_storeu_ps(out, _mm_add_ps(_mm256_castps256_ps128(b), _mm256_extractf128_ps(b, 1)));
  } else {
    for (int r = 0; r < RP; ++r) {
      const __m128 h = _mm_add_ps(_mm256_castps256_ps128(v[r]), _mm256_extractf128_ps(v[r], 1));
      const __m128 s = _mm_hadd_ps(h, h);
      out[r] = _mm_cvtss_f32(_mm_hadd_ps(s, s));
    }
  }
}

// Tile t (8 output rows) for MC rows of x (m0 .. m0+MC): fin[m] lane i = y[m0+m][8t+i] without
// bias. RP rows of the tile per pass over a group keep MC*RP accumulators in registers; each
// accumulator is a vector along k, reduced once per group and scaled there:
//   fin += sf * sum_k(masked * x) + zs * sum_k(x).
template <int MC, int RP>
void decode_tile(const W4Matrix& w, const W4DecodeArgs& a, int t, int m0, __m256* fin) {
  const int nb = w.group_len / 8;
  const float* xr[MC];
  for (int m = 0; m < MC; ++m) {
    xr[m] = a.x + (size_t)(m0 + m) * a.ldx;
    fin[m] = _mm256_setzero_ps();
  }
  for (int g = 0; g < w.n_groups; ++g) {
    const uint32_t* blk = w.group_block(t, g);
    __m256 sf, zs;
    group_factors(w.group_header(t, g), &sf, &zs);
    const size_t k0 = (size_t)g * w.group_len;
    alignas(32) float sums[MC][8];
    __m256 sums8[MC];
    for (int r0 = 0; r0 < 8; r0 += RP) {
      __m256 acc[MC][RP];
#pragma GCC unroll 8
      for (int m = 0; m < MC; ++m)
#pragma GCC unroll 8
        for (int r = 0; r < RP; ++r) acc[m][r] = _mm256_setzero_ps();
      for (int b = 0; b < nb; ++b) {
        const __m256i v = _mm256_load_si256(reinterpret_cast<const __m256i*>(blk + 8 * b));
        __m256 xv[MC];
#pragma GCC unroll 8
        for (int m = 0; m < MC; ++m) xv[m] = _mm256_loadu_ps(xr[m] + k0 + 8 * b);
#pragma GCC unroll 8
        for (int r = 0; r < RP; ++r) {
          const __m256 q = _mm256_cvtepi32_ps(_mm256_and_si256(v, mask(r0 + r)));
#pragma GCC unroll 8
          for (int m = 0; m < MC; ++m) acc[m][r] = _mm256_fmadd_ps(q, xv[m], acc[m][r]);
        }
      }
#pragma GCC unroll 8
      for (int m = 0; m < MC; ++m) {
        if constexpr (RP == 8)
          sums8[m] = reduce8(acc[m]);
        else
          reduce_rows<RP>(acc[m], sums[m] + r0);
      }
    }
#pragma GCC unroll 8
    for (int m = 0; m < MC; ++m) {
      const __m256 s = RP == 8 ? sums8[m] : _mm256_load_ps(sums[m]);
      const __m256 xs = _mm256_broadcast_ss(a.xsum + (size_t)(m0 + m) * w.n_groups + g);
      fin[m] = _mm256_fmadd_ps(s, sf, _mm256_fmadd_ps(zs, xs, fin[m]));
    }
  }
}

void decode_avx2(const W4Matrix& w, const W4DecodeArgs& a, int tile_begin, int tile_end) {
  for (int t = tile_begin; t < tile_end; ++t) {
    const __m256 bias = a.bias ? _mm256_loadu_ps(a.bias + 8 * t) : _mm256_setzero_ps();
    for (int m0 = 0; m0 < a.M;) {
      __m256 fin[4];
      const int rem = a.M - m0;
      int mc;
      if (rem >= 4) {  // (tried 8 x 1 for rem >= 8: slower)
        decode_tile<4, 2>(w, a, t, m0, fin), mc = 4;
      } else if (rem == 3) {
        decode_tile<3, 2>(w, a, t, m0, fin), mc = 3;
      } else if (rem == 2) {
        decode_tile<2, 4>(w, a, t, m0, fin), mc = 2;
      } else {
        decode_tile<1, 8>(w, a, t, m0, fin), mc = 1;
      }
      for (int m = 0; m < mc; ++m)
        _mm256_storeu_ps(a.y + (size_t)(m0 + m) * a.ldy + 8 * t, _mm256_add_ps(fin[m], bias));
      m0 += mc;
    }
  }
}

void dequant_avx2(const W4Matrix& w, int tile_begin, int tile_end, float* out, size_t ldo) {
  const int nb = w.group_len / 8;
  for (int t = tile_begin; t < tile_end; ++t) {
    float* o = out + (size_t)(t - tile_begin) * 8 * ldo;
    for (int g = 0; g < w.n_groups; ++g) {
      const uint32_t* blk = w.group_block(t, g);
      alignas(32) float sf[8], zs[8];
      __m256 sfv, zsv;
      group_factors(w.group_header(t, g), &sfv, &zsv);
      _mm256_store_ps(sf, sfv);
      _mm256_store_ps(zs, zsv);
      const int k0 = g * w.group_len;
      for (int r = 0; r < 8; ++r) {
        const __m256 s = _mm256_broadcast_ss(sf + r), zsr = _mm256_broadcast_ss(zs + r);
        const __m256i m = mask(r);
        float* orow = o + (size_t)r * ldo;
        for (int b = 0; b < nb; ++b) {
          const int k = k0 + 8 * b;
          const __m256i v = _mm256_load_si256(reinterpret_cast<const __m256i*>(blk + 8 * b));
          const __m256 wv = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_and_si256(v, m)), s, zsr);
          if (k + 8 <= w.K) {
            _mm256_storeu_ps(orow + k, wv);
          } else if (k < w.K) {  // per-channel padding tail
            alignas(32) float tmp[8];
            _mm256_store_ps(tmp, wv);
            std::memcpy(orow + k, tmp, sizeof(float) * (w.K - k));
          }
        }
      }
    }
  }
}

}  // namespace

W4Kernels w4_kernels_avx2() { return {Isa::Avx2, decode_avx2, dequant_avx2}; }

}  // namespace awq::detail
