// AVX2 + FMA W4 kernels (compiled with -mavx2 -mfma -mf16c -mbmi2; selected at run time).
// Layout: kernels/w4.h. A sub-block is 32 k x 8 rows in 128 bytes: 4 row pairs (p, p + 4) of
// 32 bytes, each row's 16 bytes holding k = j in the low nibble and k = 16 + j in the high one.
//  - I8 decode: one 32-byte load = 64 codes of a row pair; (v & 0x0F) and (v >> 4 & 0x0F) are
//    the u8 operands of maddubs against the int8 activations (stored with both 128-bit lanes
//    equal, so the same activation bytes meet both rows); madd(.., 1) sums to 8 int32 lanes =
//    4 per row, scaled by the block's activation scale into a float accumulator per pair. At the
//    end of a group three hadds give the 8 rows in natural order; the group's weight scale and
//    zero are applied there.
//  - F32 decode / dequant: a row's 16 bytes widen to 4 x 8 floats (k order).
#include <immintrin.h>

#include <cstring>

#include "kernels/cpu/w4_decode_loop.h"
#include "kernels/cpu/w4_kernels.h"

namespace awq::detail {
namespace {

// Per-row factors of one group: s (fp16 -> fp32) and zs = z * s (exact).
inline void group_factors(const W4GroupHeader* h, __m256* s, __m256* zs) {
  *s = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(h->scale)));
  const __m256 z = _mm256_cvtepi32_ps(
      _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(h->zero))));
  *zs = _mm256_mul_ps(z, *s);
}

// The 32 codes of one row of a sub-block (16 bytes at c) as 4 x 8 floats in k order.
inline void unpack_row(const uint8_t* c, __m256* q) {
  const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(c));
  const __m128i low4 = _mm_set1_epi8(0x0F);
  const __m128i lo = _mm_and_si128(v, low4), hi = _mm_and_si128(_mm_srli_epi16(v, 4), low4);
  q[0] = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(lo));
  q[1] = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_unpackhi_epi64(lo, lo)));
  q[2] = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(hi));
  q[3] = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_unpackhi_epi64(hi, hi)));
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

// ---- F32 decode ------------------------------------------------------------------------------
// Tile t for MC rows of x (m0 .. m0+MC): fin[m] lane i = y[m0+m][8t+i] without bias. RP rows of
// the tile per pass over a group keep MC*RP accumulators (vectors along k), reduced once per
// group:  fin += s * sum_k(q * x) - z * s * sum_k(x).
template <int MC, int RP>
void decode_f32_tile(const W4Matrix& w, const W4DecodeArgs& a, int t, int m0, __m256* fin) {
  const int nb = w.n_sub();
  const float* xr[MC];
  for (int m = 0; m < MC; ++m) {
    xr[m] = a.x + (size_t)(m0 + m) * a.ldx;
    fin[m] = _mm256_setzero_ps();
  }
  for (int g = 0; g < w.n_groups; ++g) {
    const uint8_t* blk = w.group_block(t, g);
    __m256 s, zs;
    group_factors(w.group_header(t, g), &s, &zs);
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
#pragma GCC unroll 8
        for (int r = 0; r < RP; ++r) {
          __m256 q[4];
          unpack_row(blk + W4Matrix::row_offset(r0 + r, b), q);
#pragma GCC unroll 8
          for (int m = 0; m < MC; ++m) {
            const float* xb = xr[m] + k0 + 32 * b;
            acc[m][r] = _mm256_fmadd_ps(q[0], _mm256_loadu_ps(xb), acc[m][r]);
            acc[m][r] = _mm256_fmadd_ps(q[1], _mm256_loadu_ps(xb + 8), acc[m][r]);
            acc[m][r] = _mm256_fmadd_ps(q[2], _mm256_loadu_ps(xb + 16), acc[m][r]);
            acc[m][r] = _mm256_fmadd_ps(q[3], _mm256_loadu_ps(xb + 24), acc[m][r]);
          }
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
      const __m256 sum = RP == 8 ? sums8[m] : _mm256_load_ps(sums[m]);
      const __m256 xs = _mm256_broadcast_ss(a.xsum + (size_t)(m0 + m) * w.n_groups + g);
      fin[m] = _mm256_fmadd_ps(sum, s, _mm256_fnmadd_ps(zs, xs, fin[m]));
    }
  }
}

void decode_f32_avx2(const W4Matrix& w, const W4DecodeArgs& a, int tile_begin, int tile_end) {
  w4_decode_loop<4>(a, tile_begin, tile_end, [&](auto mc, int t, int m0, __m256* fin) {
    constexpr int MC = decltype(mc)::value;
    decode_f32_tile<MC, MC == 1 ? 8 : MC == 2 ? 4 : 2>(w, a, t, m0, fin);
  });
}

// ---- I8 decode -------------------------------------------------------------------------------
// Tile t for rows [m0, m0 + mc) of x (mc <= kI8Rows). Per sub-block the tile's 4 row-pair
// vectors are unpacked once into 8 registers (lo/hi nibbles) and reused for every row of x:
//   per row pair p: d16_p = maddubs(lo_p, x_lo) + maddubs(hi_p, x_hi)    (int16, |lane| <= 7620)
//   hadd16(hadd16(d16_0, d16_1), hadd16(d16_2, d16_3))                    (|lane| <= 30480)
//   madd(., 1) -> the exact int32 dot of rows 0..7 (natural order) with the 32-value block,
//   summed in int32 over the w.act_sub() sub-blocks of an activation block.
// The fp32 part is the scalar reference's (ref/w4_ref.cpp) operation for operation, so every
// row's result is bit-identical to it and independent of M and of the other rows:
//   ga = sum_j (float)dot_j * d_j  (j in order, from 0);  acc += s * ga - zs * xqs[g].
// MC > 0: exactly MC rows (accumulators in registers); MC == 0: mc rows (<= kI8Rows, in L1).
constexpr int kI8Rows = 64;

template <int MC>
void decode_i8_rows(const W4Matrix& w, const W4DecodeArgs& a, int t, int m0, int mc_rt) {
  const int mc = MC > 0 ? MC : mc_rt;
  constexpr int kRows = MC > 0 ? MC : kI8Rows;
  const int nb = w.n_sub(), ab = w.act_sub(), na = w.n_act();
  const __m256i low4 = _mm256_set1_epi8(0x0F);
  const __m256i ones = _mm256_set1_epi16(1);
  alignas(32) float fin[kRows][8];
  alignas(32) float ga[kRows][8];
  alignas(32) int32_t idot[kRows][8];  // int32 dots of the activation block so far
  for (int m = 0; m < mc; ++m) _mm256_store_ps(fin[m], _mm256_setzero_ps());
  for (int g = 0; g < w.n_groups; ++g) {
    const uint8_t* blk = w.group_block(t, g);
    for (int m = 0; m < mc; ++m) _mm256_store_ps(ga[m], _mm256_setzero_ps());
    for (int b = 0; b < nb; ++b) {
      const int gb = g * nb + b;  // block index within the row of x
      const uint8_t* sub = blk + (size_t)b * W4Matrix::kSubBytes;
      __m256i lo[4], hi[4];
      for (int p = 0; p < 4; ++p) {
        const __m256i v = _mm256_load_si256(reinterpret_cast<const __m256i*>(sub + 32 * p));
        lo[p] = _mm256_and_si256(v, low4);
        hi[p] = _mm256_and_si256(_mm256_srli_epi16(v, 4), low4);
      }
      const int8_t* xb = a.xq + (size_t)m0 * a.ldxq + (size_t)gb * 64;
      const float* xd = a.xd + (size_t)m0 * a.ldxd + g * na + b / ab;
      const bool first = b % ab == 0, last = b % ab == ab - 1;
#pragma GCC unroll 4
      for (int m = 0; m < mc; ++m, xb += a.ldxq, xd += a.ldxd) {
        const __m256i x_lo = _mm256_load_si256(reinterpret_cast<const __m256i*>(xb));
        const __m256i x_hi = _mm256_load_si256(reinterpret_cast<const __m256i*>(xb + 32));
        const __m256i d0 =
            _mm256_add_epi16(_mm256_maddubs_epi16(lo[0], x_lo), _mm256_maddubs_epi16(hi[0], x_hi));
        const __m256i d1 =
            _mm256_add_epi16(_mm256_maddubs_epi16(lo[1], x_lo), _mm256_maddubs_epi16(hi[1], x_hi));
        const __m256i d2 =
            _mm256_add_epi16(_mm256_maddubs_epi16(lo[2], x_lo), _mm256_maddubs_epi16(hi[2], x_hi));
        const __m256i d3 =
            _mm256_add_epi16(_mm256_maddubs_epi16(lo[3], x_lo), _mm256_maddubs_epi16(hi[3], x_hi));
        const __m256i h = _mm256_hadd_epi16(_mm256_hadd_epi16(d0, d1), _mm256_hadd_epi16(d2, d3));
        __m256i dot = _mm256_madd_epi16(h, ones);
        if (!first) dot = _mm256_add_epi32(dot, _mm256_load_si256(reinterpret_cast<const __m256i*>(idot[m])));
        if (!last) {
          _mm256_store_si256(reinterpret_cast<__m256i*>(idot[m]), dot);
          continue;
        }
        const __m256 part = _mm256_mul_ps(_mm256_cvtepi32_ps(dot), _mm256_broadcast_ss(xd));
        _mm256_store_ps(ga[m], _mm256_add_ps(_mm256_load_ps(ga[m]), part));
      }
    }
    __m256 s, zs;
    group_factors(w.group_header(t, g), &s, &zs);
    const float* xqs = a.xqs + (size_t)m0 * w.n_groups + g;
    for (int m = 0; m < mc; ++m, xqs += w.n_groups) {
      const __m256 u = _mm256_sub_ps(_mm256_mul_ps(s, _mm256_load_ps(ga[m])),
                                     _mm256_mul_ps(zs, _mm256_broadcast_ss(xqs)));
      _mm256_store_ps(fin[m], _mm256_add_ps(_mm256_load_ps(fin[m]), u));
    }
  }
  const __m256 bias = a.bias ? _mm256_loadu_ps(a.bias + 8 * t) : _mm256_setzero_ps();
  for (int m = 0; m < mc; ++m)
    _mm256_storeu_ps(a.y + (size_t)(m0 + m) * a.ldy + 8 * t,
                     _mm256_add_ps(_mm256_load_ps(fin[m]), bias));
}

void decode_i8_avx2(const W4Matrix& w, const W4DecodeArgs& a, int tile_begin, int tile_end) {
  for (int t = tile_begin; t < tile_end; ++t)
    for (int m0 = 0; m0 < a.M;) {
      const int left = a.M - m0;
      if (left >= 8) {
        const int mc = left < kI8Rows ? left : kI8Rows;
        decode_i8_rows<0>(w, a, t, m0, mc);
        m0 += mc;
      } else if (left >= 2) {
        decode_i8_rows<2>(w, a, t, m0, 2);
        m0 += 2;
      } else {
        decode_i8_rows<1>(w, a, t, m0, 1);
        m0 += 1;
      }
    }
}

// ---- Dequantization --------------------------------------------------------------------------
// w = q * s - z * s in one FMA: exactly (q - z) * s.
void dequant_avx2(const W4Matrix& w, int tile_begin, int tile_end, float* out, size_t ldo) {
  const int nb = w.n_sub(), G = w.group_size;
  for (int t = tile_begin; t < tile_end; ++t) {
    float* o = out + (size_t)(t - tile_begin) * 8 * ldo;
    for (int g = 0; g < w.n_groups; ++g) {
      const uint8_t* blk = w.group_block(t, g);
      alignas(32) float sf[8], zs[8];
      __m256 sv, zsv;
      group_factors(w.group_header(t, g), &sv, &zsv);
      _mm256_store_ps(sf, sv);
      _mm256_store_ps(zs, zsv);
      for (int r = 0; r < 8; ++r) {
        const __m256 s = _mm256_broadcast_ss(sf + r);
        const __m256 nzs = _mm256_set1_ps(-zs[r]);
        float* orow = o + (size_t)r * ldo + (size_t)g * G;
        for (int b = 0; b < nb; ++b) {
          __m256 q[4];
          unpack_row(blk + W4Matrix::row_offset(r, b), q);
          for (int i = 0; i < 4; ++i) {
            const int k = 32 * b + 8 * i;  // within the group
            const __m256 wv = _mm256_fmadd_ps(q[i], s, nzs);
            if (k + 8 <= G) {
              _mm256_storeu_ps(orow + k, wv);
            } else if (k < G) {  // group padding tail
              alignas(32) float tmp[8];
              _mm256_store_ps(tmp, wv);
              std::memcpy(orow + k, tmp, sizeof(float) * (G - k));
            }
          }
        }
      }
    }
  }
}

}  // namespace

W4Kernels w4_kernels_avx2() { return {Isa::Avx2, decode_f32_avx2, decode_i8_avx2, dequant_avx2}; }

}  // namespace awq::detail
