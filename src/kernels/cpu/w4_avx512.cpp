// AVX-512 W4 kernels (compiled with -mavx512f/bw/vl/dq/vnni/bf16 -mfma -mf16c -mbmi2; selected
// at run time when CPUID reports that set). Same repacked layout as every ISA (kernels/w4.h): a
// sub-block is 32 k x 8 rows in 128 bytes, 4 row pairs (p, p + 4) of 32 bytes, a row's 16 bytes
// holding k = j in the low nibble and k = 16 + j in the high one.
//  - I8 decode (VNNI): a 64-byte half of a sub-block = two row pairs = 128 codes, its 128-bit
//    lanes holding rows [p, p + 4, p + 1, p + 5]. (v & 0x0F) and (v >> 4 & 0x0F) are the u8
//    operands of vpdpbusd; the s8 operand is the block's activations broadcast to all four lanes
//    (bytes 0..15 resp. 32..47 of the block in W4DecodeArgs::xq, read as stored). Two vpdpbusd
//    per half and sub-block give 16 int32 lanes = 4 partial dots per row for 4 rows, summed in
//    int32 over an activation block, then converted once: fin += dot * (d_j * s) with the 8
//    fp16 scales expanded to the same lane pattern, fz -= (z * s) * xqs[g] per group (8 rows);
//    one reduction per tile. Up to 4 rows of x share each weight load (32 registers).
//    Integer contract = ref decode_i8_scalar (same int32 block dots; only the fp32 order
//    differs).
//  - F32 decode / dequant: a row's 16 bytes widen to 2 x 16 floats (k order) with vpmovzxbd.
// GCC 12 reports -Wmaybe-uninitialized inside its own AVX-512 headers (the _mm512_undefined_*
// pass-through operand of plain intrinsics such as _mm512_cvtepi32_ps; GCC bug 105593).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include "kernels/cpu/w4_decode_loop.h"
#include "kernels/cpu/w4_kernels.h"

namespace awq::detail {
namespace {

// Per-row factors of one group: s (fp16 -> fp32) and zs = z * s (exact), rows 0..7.
inline void group_factors(const W4GroupHeader* h, __m256* s, __m256* zs) {
  *s = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(h->scale)));
  const __m256 z = _mm256_cvtepi32_ps(
      _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(h->zero))));
  *zs = _mm256_mul_ps(z, *s);
}

// The 32 codes of one row of a sub-block (16 bytes at c) as 2 x 16 floats in k order.
inline void unpack_row(const uint8_t* c, __m512* q) {
  const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(c));
  const __m128i low4 = _mm_set1_epi8(0x0F);
  q[0] = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_and_si128(v, low4)));
  q[1] = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_and_si128(_mm_srli_epi16(v, 4), low4)));
}

inline __m256 fold(__m512 v) {
  return _mm256_add_ps(_mm512_castps512_ps256(v), _mm512_extractf32x8_ps(v, 1));
}

// Lane r of the result = horizontal sum of v[r] (8 vectors of 16 -> 8 values).
inline __m256 reduce8(const __m512* v) {
  __m256 f[8];
  for (int r = 0; r < 8; ++r) f[r] = fold(v[r]);
  const __m256 b0 = _mm256_hadd_ps(_mm256_hadd_ps(f[0], f[1]), _mm256_hadd_ps(f[2], f[3]));
  const __m256 b1 = _mm256_hadd_ps(_mm256_hadd_ps(f[4], f[5]), _mm256_hadd_ps(f[6], f[7]));
  return _mm256_add_ps(_mm256_permute2f128_ps(b0, b1, 0x20), _mm256_permute2f128_ps(b0, b1, 0x31));
}

// out[r] = horizontal sum of v[r], r < RP (RP = 2 or 4).
template <int RP>
inline void reduce_rows(const __m512* v, float* out) {
  if constexpr (RP == 4) {
    const __m256 b = _mm256_hadd_ps(_mm256_hadd_ps(fold(v[0]), fold(v[1])),
                                    _mm256_hadd_ps(fold(v[2]), fold(v[3])));
    _mm_storeu_ps(out, _mm_add_ps(_mm256_castps256_ps128(b), _mm256_extractf128_ps(b, 1)));
  } else {
    for (int r = 0; r < RP; ++r) out[r] = _mm512_reduce_add_ps(v[r]);
  }
}

// ---- F32 decode ------------------------------------------------------------------------------
// As the AVX2 kernel with 16-float vectors: MC rows of x, RP rows of the tile per pass over a
// group (MC * RP <= 16 accumulators), reduced once per group:
//   fin += s * sum_k(q * x) - z * s * sum_k(x).
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
      __m512 acc[MC][RP];
#pragma GCC unroll 8
      for (int m = 0; m < MC; ++m)
#pragma GCC unroll 8
        for (int r = 0; r < RP; ++r) acc[m][r] = _mm512_setzero_ps();
      for (int b = 0; b < nb; ++b) {
#pragma GCC unroll 8
        for (int r = 0; r < RP; ++r) {
          __m512 q[2];
          unpack_row(blk + W4Matrix::row_offset(r0 + r, b), q);
#pragma GCC unroll 8
          for (int m = 0; m < MC; ++m) {
            const float* xb = xr[m] + k0 + 32 * b;
            acc[m][r] = _mm512_fmadd_ps(q[0], _mm512_loadu_ps(xb), acc[m][r]);
            acc[m][r] = _mm512_fmadd_ps(q[1], _mm512_loadu_ps(xb + 16), acc[m][r]);
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

void decode_f32_avx512(const W4Matrix& w, const W4DecodeArgs& a, int tile_begin, int tile_end) {
  w4_decode_loop<4>(a, tile_begin, tile_end, [&](auto mc, int t, int m0, __m256* fin) {
    constexpr int MC = decltype(mc)::value;
    decode_f32_tile<MC, MC == 1 ? 8 : 4>(w, a, t, m0, fin);
  });
}

// ---- I8 decode (VNNI) ------------------------------------------------------------------------
// Lane patterns of the two 64-byte halves of a sub-block: half A = pairs 0, 1 = rows
// [0, 4, 1, 5] (one row per 128-bit lane, 4 int32 lanes each), half B = pairs 2, 3 = [2, 6, 3, 7].
// Sums the 4 lanes of each row of fa (A pattern) and fb (B pattern): the 8 rows in order.
inline __m256 reduce_ab(__m512 fa, __m512 fb) {
  // per 128-bit lane L: [A0 A1 B0 B1] + [A2 A3 B2 B3]
  const __m512 s = _mm512_add_ps(_mm512_shuffle_ps(fa, fb, _MM_SHUFFLE(1, 0, 1, 0)),
                                 _mm512_shuffle_ps(fa, fb, _MM_SHUFFLE(3, 2, 3, 2)));
  // per lane L: [a, b, a, b], a = row of A's lane L, b = row of B's lane L
  const __m512 r = _mm512_add_ps(_mm512_shuffle_ps(s, s, _MM_SHUFFLE(2, 0, 2, 0)),
                                 _mm512_shuffle_ps(s, s, _MM_SHUFFLE(3, 1, 3, 1)));
  // rows 0..7 = a0, a2, b0, b2, a1, a3, b1, b3  (element 4L = a of lane L, 4L + 1 = b)
  const __m512i idx = _mm512_setr_epi32(0, 8, 1, 9, 4, 12, 5, 13, 0, 0, 0, 0, 0, 0, 0, 0);
  return _mm512_castps512_ps256(_mm512_permutexvar_ps(idx, r));
}

// The two 64-byte halves of a sub-block, each from two aligned 32-byte loads: group blocks are
// only 32-byte aligned (group stride = 128 * n_sub + 32), so in every other group a 64-byte load
// would straddle two cache lines (measured: loadu ~5-10 % slower at M = 1, L2-resident weights, on a
// noisy shared machine; choosing per group between the two was no better than this).
inline void load_halves(const uint8_t* sub, __m512i* va, __m512i* vb) {
  const __m256i* p = reinterpret_cast<const __m256i*>(sub);
  *va = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_load_si256(p)), _mm256_load_si256(p + 1),
                           1);
  *vb = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_load_si256(p + 2)),
                           _mm256_load_si256(p + 3), 1);
}

// acc += u8 codes . s8 x per int32 lane (vpdpbusd), in place. As an intrinsic in the
// accumulating loops below GCC 12 computes into a fresh register and copies it back every
// iteration (4 extra moves per sub-block at M = 1, measured ~12 % slower there); the tied
// operand keeps the accumulator in one register.
inline __m512i dpbusd_acc(__m512i acc, __m512i codes, __m512i x) {
  asm("vpdpbusd %2, %1, %0" : "+v"(acc) : "v"(codes), "v"(x));
  return acc;
}

// The vpdpbusd operands of one sub-block: low and high nibbles of halves A and B.
inline void unpack_sub(const uint8_t* sub, __m512i low4, __m512i* lo_a, __m512i* hi_a,
                       __m512i* lo_b, __m512i* hi_b) {
  __m512i va, vb;
  load_halves(sub, &va, &vb);
  *lo_a = _mm512_and_si512(va, low4);
  *hi_a = _mm512_and_si512(_mm512_srli_epi16(va, 4), low4);
  *lo_b = _mm512_and_si512(vb, low4);
  *hi_b = _mm512_and_si512(_mm512_srli_epi16(vb, 4), low4);
}

// Tile t for MC (1..4) rows of x; fin[m] lane i = y[m0+m][8t+i] without bias.
// The int32 dots run over a whole activation block (w.act_sub() sub-blocks), then one
// conversion and one scale per block and half: fa += float(dot) * (d * s). For MC <= 2 the low
// and high nibbles accumulate separately, so that each loop-carried chain is one vpdpbusd per
// sub-block (latency, not throughput, bounds one or two rows of x); at MC 3-4 the registers
// only allow one chain per half, and the rows' independent chains hide its latency.
template <int MC>
void decode_i8_tile(const W4Matrix& w, const W4DecodeArgs& a, int t, int m0, __m256* fin) {
  constexpr bool kSplit = MC <= 2;
  const int ab = w.act_sub(), na = w.n_act();
  const __m512i low4 = _mm512_set1_epi8(0x0F);
  const __m512i idx_a = _mm512_setr_epi32(0, 0, 0, 0, 4, 4, 4, 4, 1, 1, 1, 1, 5, 5, 5, 5);
  const __m512i idx_b = _mm512_setr_epi32(2, 2, 2, 2, 6, 6, 6, 6, 3, 3, 3, 3, 7, 7, 7, 7);
  const int8_t* xq[MC];
  const float* xd[MC];
  const float* xqs[MC];
  __m512 fa[MC], fb[MC];
  __m256 fz[MC];
  for (int m = 0; m < MC; ++m) {
    xq[m] = a.xq + (size_t)(m0 + m) * a.ldxq;
    xd[m] = a.xd + (size_t)(m0 + m) * a.ldxd;
    xqs[m] = a.xqs + (size_t)(m0 + m) * w.n_groups;
    fa[m] = fb[m] = _mm512_setzero_ps();
    fz[m] = _mm256_setzero_ps();
  }
  for (int g = 0; g < w.n_groups; ++g) {
    const uint8_t* blk = w.group_block(t, g);
    __m256 s, zs;
    group_factors(w.group_header(t, g), &s, &zs);
    const __m512 s_a = _mm512_permutexvar_ps(idx_a, _mm512_castps256_ps512(s));
    const __m512 s_b = _mm512_permutexvar_ps(idx_b, _mm512_castps256_ps512(s));
    for (int j = 0; j < na; ++j) {
      __m512i dot_a[MC], dot_b[MC], dot_a2[kSplit ? MC : 1], dot_b2[kSplit ? MC : 1];
#pragma GCC unroll 4
      for (int m = 0; m < MC; ++m) {
        dot_a[m] = dot_b[m] = _mm512_setzero_si512();
        if constexpr (kSplit) dot_a2[m] = dot_b2[m] = _mm512_setzero_si512();
      }
      int b = j * ab;
      do {
        const int gb = g * w.n_sub() + b;  // sub-block index within the row of x
        __m512i lo_a, hi_a, lo_b, hi_b;
        unpack_sub(blk + (size_t)b * W4Matrix::kSubBytes, low4, &lo_a, &hi_a, &lo_b, &hi_b);
#pragma GCC unroll 4
        for (int m = 0; m < MC; ++m) {
          const int8_t* xb = xq[m] + (size_t)gb * 64;
          // q[0..15] and q[16..31] of the block in every 128-bit lane.
          const __m512i x_lo =
              _mm512_broadcast_i32x4(_mm_load_si128(reinterpret_cast<const __m128i*>(xb)));
          const __m512i x_hi =
              _mm512_broadcast_i32x4(_mm_load_si128(reinterpret_cast<const __m128i*>(xb + 32)));
          // u8 codes (0..15) x s8 activations (-127..127): |int32 lane| <= 4 * 8 * 15 * 127.
          if constexpr (kSplit) {
            dot_a[m] = dpbusd_acc(dot_a[m], lo_a, x_lo);
            dot_a2[m] = dpbusd_acc(dot_a2[m], hi_a, x_hi);
            dot_b[m] = dpbusd_acc(dot_b[m], lo_b, x_lo);
            dot_b2[m] = dpbusd_acc(dot_b2[m], hi_b, x_hi);
          } else {
            dot_a[m] = dpbusd_acc(dpbusd_acc(dot_a[m], lo_a, x_lo), hi_a, x_hi);
            dot_b[m] = dpbusd_acc(dpbusd_acc(dot_b[m], lo_b, x_lo), hi_b, x_hi);
          }
        }
      } while (++b < (j + 1) * ab);
#pragma GCC unroll 4
      for (int m = 0; m < MC; ++m) {
        __m512i da = dot_a[m], db = dot_b[m];
        if constexpr (kSplit) {
          da = _mm512_add_epi32(da, dot_a2[m]);
          db = _mm512_add_epi32(db, dot_b2[m]);
        }
        const __m512 d = _mm512_set1_ps(xd[m][g * na + j]);
        fa[m] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(da), _mm512_mul_ps(d, s_a), fa[m]);
        fb[m] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(db), _mm512_mul_ps(d, s_b), fb[m]);
      }
    }
#pragma GCC unroll 4
    for (int m = 0; m < MC; ++m)
      fz[m] = _mm256_fnmadd_ps(zs, _mm256_broadcast_ss(xqs[m] + g), fz[m]);
  }
#pragma GCC unroll 4
  for (int m = 0; m < MC; ++m) fin[m] = _mm256_add_ps(reduce_ab(fa[m], fb[m]), fz[m]);
}

void decode_i8_avx512(const W4Matrix& w, const W4DecodeArgs& a, int tile_begin, int tile_end) {
  w4_decode_loop<4>(a, tile_begin, tile_end, [&](auto mc, int t, int m0, __m256* fin) {
    decode_i8_tile<decltype(mc)::value>(w, a, t, m0, fin);
  });
}

// ---- Dequantization --------------------------------------------------------------------------
// w = q * s - z * s in one FMA: exactly (q - z) * s. 16 k per store; the group's padding tail
// (G % 32 != 0) is a masked store.
void dequant_avx512(const W4Matrix& w, int tile_begin, int tile_end, float* out, size_t ldo) {
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
        const __m512 s = _mm512_set1_ps(sf[r]);
        const __m512 nzs = _mm512_set1_ps(-zs[r]);
        float* orow = o + (size_t)r * ldo + (size_t)g * G;
        for (int b = 0; b < nb; ++b) {
          __m512 q[2];
          unpack_row(blk + W4Matrix::row_offset(r, b), q);
          for (int i = 0; i < 2; ++i) {
            const int k = 32 * b + 16 * i;  // within the group
            const __m512 wv = _mm512_fmadd_ps(q[i], s, nzs);
            if (k + 16 <= G)
              _mm512_storeu_ps(orow + k, wv);
            else if (k < G)  // group padding tail
              _mm512_mask_storeu_ps(orow + k, (__mmask16)((1u << (G - k)) - 1), wv);
          }
        }
      }
    }
  }
}

}  // namespace

W4Kernels w4_kernels_avx512() {
  return {Isa::Avx512, decode_f32_avx512, decode_i8_avx512, dequant_avx512};
}

}  // namespace awq::detail
