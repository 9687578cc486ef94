// AVX-512 W4 kernels (compiled with -mavx512f/bw/vl/dq/vnni/bf16 -mfma -mf16c -mbmi2; selected
// at run time when CPUID reports that set). Same repacked layout as every ISA (kernels/w4.h): a
// sub-block is 32 k x 8 rows in 128 bytes, 4 row pairs (p, p + 4) of 32 bytes, a row's 16 bytes
// holding k = j in the low nibble and k = 16 + j in the high one.
//  - I8 decode (VNNI): a 64-byte half of a sub-block = two row pairs = 128 codes, its 128-bit
//    lanes holding rows [p, p + 4, p + 1, p + 5]. (v & 0x0F) and (v >> 4 & 0x0F) are the u8
//    operands of vpdpbusd; the s8 operand is the block's activations broadcast to all four lanes
//    (bytes 0..15 resp. 16..31 of the block in the compact W4DecodeArgs::xq). Two vpdpbusd
//    per half and sub-block give 16 int32 lanes = 4 partial dots per row for 4 rows, summed in
//    int32 over an activation block, folded in int32 to one dot per row (fold_ab), and two rows
//    of x share one fp32 vector: acc += float(dot) * (d * s) per activation block,
//    acc -= (z * s) * xqs[g] per group; one permute per row of x and tile. Up to 6 rows of x
//    share each weight load (32 registers). Integer contract = ref decode_i8_scalar (same int32
//    block dots; only the fp32 order differs).
//  - F32 decode / dequant: a row's 16 bytes widen to 2 x 16 floats (k order) with vpmovzxbd.
// GCC 12 reports -Wmaybe-uninitialized inside its own AVX-512 headers (the _mm512_undefined_*
// pass-through operand of plain intrinsics such as _mm512_cvtepi32_ps; GCC bug 105593).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
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

// The int32 dots of one activation block of one row of x, folded exactly: from the halves A
// (lanes of 128-bit lane L: 4 partial dots of row a_L, a = 0, 4, 1, 5) and B (rows b_L = 2, 6,
// 3, 7) to [a, a, b, b] per 128-bit lane, a and b the row's whole dot. Only unpack / shuffle /
// add: on Zen 4 these run beside vpdpbusd, while every fp32 multiply or FMA takes a cycle from
// it (measured: 16 vpdpbusd + 4 vmulps = 20.3 cycles, + 6 unpack/add = 16.2).
inline __m512i fold_ab(__m512i da, __m512i db) {
  const __m512i u = _mm512_add_epi32(_mm512_unpacklo_epi64(da, db), _mm512_unpackhi_epi64(da, db));
  return _mm512_add_epi32(u, _mm512_shuffle_epi32(u, _MM_PERM_CDAB));
}

// Tile t for MC (1..6) rows of x; fin[m] lane i = y[m0+m][8t+i] without bias. NS: sub-blocks
// per group when known at compile time (1..4: G = 32 .. 128, the loops unrolled and the rows
// of x addressed from one running pointer), 0 for any (read from w).
// The int32 dots run over a whole activation block (w.act_sub() sub-blocks), are folded to one
// dot per row (fold_ab), and two rows of x m, m' share one fp32 vector: lanes [a_m, a_m', b_m,
// b_m'] per 128-bit lane, converted once and scaled once by [d_m, d_m'] x s:
// acc += float(dot) * (d * s); per group acc -= (z * s) * xqs. So an activation block costs one
// multiply and one FMA per pair of rows of x (four per row when A and B were scaled apart). Each
// lane is one row of x and one output row, computed alike whatever its partner (an odd row pairs
// with itself), so a row's result does not depend on the rows around it.
// For MC <= 2 the low and high nibbles accumulate separately, so that each loop-carried chain
// is one vpdpbusd per sub-block (latency, not throughput, bounds one or two rows of x); from
// MC 3 on the registers only allow one chain per half, and the rows' independent chains hide its
// latency. Six rows (12 int32 + 3 fp32 accumulators) measured ~2 % faster than four at M = 32
// (w4_bench, one thread, best of 8); eight would spill.
template <int MC, int NS>
void decode_i8_tile(const W4Matrix& w, const W4DecodeArgs& a, int t, int m0, __m256* fin) {
  constexpr bool kSplit = MC <= 2;
  constexpr int NP = (MC + 1) / 2;  // pairs of rows of x
  const int ns = NS ? NS : w.n_sub();
  const int ab = NS ? W4Matrix::act_sub_of(NS) : w.act_sub();
  const int na = ns / ab;
  const __m512i low4 = _mm512_set1_epi8(0x0F);
  // lane pattern of a pair: s[a_L], s[a_L], s[b_L], s[b_L] per 128-bit lane L
  const __m512i idx_pat = _mm512_setr_epi32(0, 0, 2, 2, 4, 4, 6, 6, 1, 1, 3, 3, 5, 5, 7, 7);
  constexpr __mmask16 kOdd = 0xAAAA;  // the lanes of the second row of a pair
  const size_t lq = a.ldxq, ld = a.ldxd, ls = w.n_groups;
  const int8_t* xp = a.xq + (size_t)m0 * lq;  // sub-block 0 of group g of row m0
  const float* dp = a.xd + (size_t)m0 * ld;    // activation block 0 of group g of row m0
  const float* sp = a.xqs + (size_t)m0 * ls;   // group g of row m0
  const uint8_t* blk = w.group_block(t, 0);
  const size_t gstride = w.group_stride();
  // the second row of pair p (itself when MC is odd and p is the last pair)
  const auto second = [](int p) { return 2 * p + 1 < MC ? 2 * p + 1 : 2 * p; };
  __m512 acc[NP];
  for (int p = 0; p < NP; ++p) acc[p] = _mm512_setzero_ps();
  constexpr int kXqSub = xq_sub_bytes(Isa::Avx512);  // compact xq: q[0..31] per sub-block
  for (int g = 0; g < w.n_groups; ++g, blk += gstride, xp += ns * kXqSub, dp += na, ++sp) {
    __m256 s8, zs8;
    group_factors(reinterpret_cast<const W4GroupHeader*>(blk + (size_t)ns * W4Matrix::kSubBytes),
                  &s8, &zs8);
    const __m512 s = _mm512_permutexvar_ps(idx_pat, _mm512_castps256_ps512(s8));
    const __m512 zs = _mm512_permutexvar_ps(idx_pat, _mm512_castps256_ps512(zs8));
#pragma GCC unroll 8
    for (int j = 0; j < na; ++j) {
      __m512i dot_a[MC], dot_b[MC], dot_a2[kSplit ? MC : 1], dot_b2[kSplit ? MC : 1];
#pragma GCC unroll 8
      for (int m = 0; m < MC; ++m) {
        dot_a[m] = dot_b[m] = _mm512_setzero_si512();
        if constexpr (kSplit) dot_a2[m] = dot_b2[m] = _mm512_setzero_si512();
      }
#pragma GCC unroll 8
      for (int bb = 0; bb < ab; ++bb) {
        const int b = j * ab + bb;
        __m512i lo_a, hi_a, lo_b, hi_b;
        unpack_sub(blk + (size_t)b * W4Matrix::kSubBytes, low4, &lo_a, &hi_a, &lo_b, &hi_b);
#pragma GCC unroll 8
        for (int m = 0; m < MC; ++m) {
          const int8_t* xb = xp + m * lq + b * kXqSub;
          // q[0..15] and q[16..31] of the block in every 128-bit lane.
          const __m512i x_lo =
              _mm512_broadcast_i32x4(_mm_load_si128(reinterpret_cast<const __m128i*>(xb)));
          const __m512i x_hi =
              _mm512_broadcast_i32x4(_mm_load_si128(reinterpret_cast<const __m128i*>(xb + 16)));
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
      }
      __m512i dot[MC];
#pragma GCC unroll 8
      for (int m = 0; m < MC; ++m) {
        __m512i da = dot_a[m], db = dot_b[m];
        if constexpr (kSplit) {
          da = _mm512_add_epi32(da, dot_a2[m]);
          db = _mm512_add_epi32(db, dot_b2[m]);
        }
        dot[m] = fold_ab(da, db);
      }
#pragma GCC unroll 8
      for (int p = 0; p < NP; ++p) {
        const int m = 2 * p, m2 = second(p);
        const __m512 d = _mm512_mask_blend_ps(kOdd, _mm512_set1_ps(dp[m * ld + j]),
                                              _mm512_set1_ps(dp[m2 * ld + j]));
        const __m512i dd = _mm512_mask_blend_epi32(kOdd, dot[m], dot[m2]);
        acc[p] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dd), _mm512_mul_ps(d, s), acc[p]);
      }
    }
#pragma GCC unroll 8
    for (int p = 0; p < NP; ++p) {
      const __m512 xs = _mm512_mask_blend_ps(kOdd, _mm512_set1_ps(sp[2 * p * ls]),
                                             _mm512_set1_ps(sp[second(p) * ls]));
      acc[p] = _mm512_fnmadd_ps(zs, xs, acc[p]);
    }
  }
  // rows 0..7 of the first row of a pair: lanes 0 (a_0), 8 (a_2), 2 (b_0), 10 (b_2), 4, 12, 6, 14
  const __m512i idx0 = _mm512_setr_epi32(0, 8, 2, 10, 4, 12, 6, 14, 0, 0, 0, 0, 0, 0, 0, 0);
  const __m512i idx1 = _mm512_add_epi32(idx0, _mm512_set1_epi32(1));
#pragma GCC unroll 8
  for (int m = 0; m < MC; ++m)
    fin[m] = _mm512_castps512_ps256(_mm512_permutexvar_ps(m % 2 ? idx1 : idx0, acc[m / 2]));
}

template <int NS>
void decode_i8_ns(const W4Matrix& w, const W4DecodeArgs& a, int tile_begin, int tile_end) {
  w4_decode_loop<6>(a, tile_begin, tile_end, [&](auto mc, int t, int m0, __m256* fin) {
    decode_i8_tile<decltype(mc)::value, NS>(w, a, t, m0, fin);
  });
}

void decode_i8_avx512(const W4Matrix& w, const W4DecodeArgs& a, int tile_begin, int tile_end) {
  switch (w.n_sub()) {
    case 1: return decode_i8_ns<1>(w, a, tile_begin, tile_end);
    case 2: return decode_i8_ns<2>(w, a, tile_begin, tile_end);
    case 3: return decode_i8_ns<3>(w, a, tile_begin, tile_end);
    case 4: return decode_i8_ns<4>(w, a, tile_begin, tile_end);
    default: return decode_i8_ns<0>(w, a, tile_begin, tile_end);
  }
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
