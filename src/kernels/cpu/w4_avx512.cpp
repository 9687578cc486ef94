// AVX-512 W4 kernels (compiled with the AVX-512 flags of CMakeLists.txt; selected at run time
// only when CPUID reports all of them). Same algorithm as w4_avx2.cpp with 16-wide k-blocks:
// 16 consecutive code words = 8 rows x 16 k (group_len is a multiple of 16, see w4.h).
#include <immintrin.h>

#include <cstring>

#include "kernels/cpu/w4_kernels.h"

// GCC 12 warns about _mm512_undefined_ps() inside its own intrinsic headers (a known false
// positive); it is not about this file's variables.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

namespace awq::detail {
namespace {

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

inline __m512i mask(int r) { return _mm512_set1_epi32((int)(0xFu << (4 * r))); }

template <int MC, int RP>
void decode_tile(const W4Matrix& w, const W4DecodeArgs& a, int t, int m0, float (*fin)[8]) {
  const int nb = w.group_len / 16;
  const float* xr[MC];
  for (int m = 0; m < MC; ++m) xr[m] = a.x + (size_t)(m0 + m) * a.ldx;
  for (int g = 0; g < w.n_groups; ++g) {
    const uint32_t* blk = w.group_block(t, g);
    alignas(32) float sf[8], zs[8];
    {
      __m256 sfv, zsv;
      group_factors(w.group_header(t, g), &sfv, &zsv);
      _mm256_store_ps(sf, sfv);
      _mm256_store_ps(zs, zsv);
    }
    const size_t k0 = (size_t)g * w.group_len;
    for (int r0 = 0; r0 < 8; r0 += RP) {
      __m512 acc[MC][RP];
#pragma GCC unroll 8
      for (int m = 0; m < MC; ++m)
#pragma GCC unroll 8
        for (int r = 0; r < RP; ++r) acc[m][r] = _mm512_setzero_ps();
      for (int b = 0; b < nb; ++b) {
        // 64-byte aligned only when group_len % 16 == 0 and the base is, which w4.h guarantees
        // for the data start; use unaligned loads to stay obviously safe.
        const __m512i v = _mm512_loadu_si512(blk + 16 * b);
        __m512 xv[MC];
#pragma GCC unroll 8
        for (int m = 0; m < MC; ++m) xv[m] = _mm512_loadu_ps(xr[m] + k0 + 16 * b);
#pragma GCC unroll 8
        for (int r = 0; r < RP; ++r) {
          const __m512 q = _mm512_cvtepi32_ps(_mm512_and_si512(v, mask(r0 + r)));
#pragma GCC unroll 8
          for (int m = 0; m < MC; ++m) acc[m][r] = _mm512_fmadd_ps(q, xv[m], acc[m][r]);
        }
      }
      for (int m = 0; m < MC; ++m) {
        const float xs = a.xsum[(size_t)(m0 + m) * w.n_groups + g];
        for (int r = 0; r < RP; ++r)
          fin[m][r0 + r] += _mm512_reduce_add_ps(acc[m][r]) * sf[r0 + r] + zs[r0 + r] * xs;
      }
    }
  }
}

void decode_avx512(const W4Matrix& w, const W4DecodeArgs& a, int tile_begin, int tile_end) {
  for (int t = tile_begin; t < tile_end; ++t) {
    for (int m0 = 0; m0 < a.M;) {
      float fin[4][8] = {};
      const int rem = a.M - m0;
      int mc;
      if (rem >= 4) {
        decode_tile<4, 4>(w, a, t, m0, fin), mc = 4;
      } else if (rem == 3) {
        decode_tile<3, 4>(w, a, t, m0, fin), mc = 3;
      } else if (rem == 2) {
        decode_tile<2, 8>(w, a, t, m0, fin), mc = 2;
      } else {
        decode_tile<1, 8>(w, a, t, m0, fin), mc = 1;
      }
      for (int m = 0; m < mc; ++m) {
        float* yr = a.y + (size_t)(m0 + m) * a.ldy + 8 * t;
        for (int i = 0; i < 8; ++i) yr[i] = fin[m][i] + (a.bias ? a.bias[8 * t + i] : 0.0f);
      }
      m0 += mc;
    }
  }
}

void dequant_avx512(const W4Matrix& w, int tile_begin, int tile_end, float* out, size_t ldo) {
  const int nb = w.group_len / 16;
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
        const __m512 s = _mm512_set1_ps(sf[r]), zsr = _mm512_set1_ps(zs[r]);
        float* orow = o + (size_t)r * ldo;
        for (int b = 0; b < nb; ++b) {
          const int k = k0 + 16 * b;
          const __m512i v = _mm512_loadu_si512(blk + 16 * b);
          const __m512 wv =
              _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_and_si512(v, mask(r))), s, zsr);
          if (k + 16 <= w.K) {
            _mm512_storeu_ps(orow + k, wv);
          } else if (k < w.K) {  // per-channel padding tail
            _mm512_mask_storeu_ps(orow + k, (__mmask16)((1u << (w.K - k)) - 1u), wv);
          }
        }
      }
    }
  }
}

}  // namespace

W4Kernels w4_kernels_avx512() { return {Isa::Avx512, decode_avx512, dequant_avx512}; }

}  // namespace awq::detail
