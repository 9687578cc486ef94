// Validation and repacking of AWQ 4-bit weights into the CPU layout described in w4.h.
#include <cmath>
#include <cstring>

#include "core/half.h"
#include "kernels/w4.h"

namespace awq {
namespace {

// AutoAWQ packs 8 output columns per int32 in this order: nibble i holds column ORDER[i].
constexpr int kAwqOrder[8] = {0, 2, 4, 6, 1, 3, 5, 7};
// Inverse: column r of the 8 sits in nibble kAwqNibbleOf[r].
constexpr int kAwqNibbleOf[8] = {0, 4, 1, 5, 2, 6, 3, 7};
static_assert(kAwqOrder[kAwqNibbleOf[3]] == 3 && kAwqOrder[kAwqNibbleOf[6]] == 6);

Expected<int> check_shape(const char* fn, int K, int N, int group_size) {
  if (K <= 0 || N <= 0) return make_error(fn, ": K and N must be positive, got K=", K, " N=", N);
  if (N % 8 != 0)
    return make_error(fn, ": N (output features) must be a multiple of 8, got N=", N,
                      " (AWQ packs 8 output columns per int32)");
  int G = group_size == -1 ? K : group_size;
  if (G <= 0)
    return make_error(fn, ": group_size must be positive or -1 (per-channel), got ", group_size);
  if (K % G != 0) return make_error(fn, ": K=", K, " is not a multiple of group_size=", G);
  if (G != K && G % 16 != 0)
    return make_error(fn, ": group_size=", G,
                      " not supported; use a multiple of 16 (32, 64, 128) or -1 (per-channel)");
  return G;
}

// q(n, k), z(n, g): codes in [0, 15]; s(n, g): a finite float already rounded to fp16.
// Layout: see w4.h (sub-blocks of 32 k x 8 rows, row pairs (p, p + 4), nibble halves).
template <class QF, class ZF, class SF>
W4Matrix build(int K, int N, int G, QF q, ZF z, SF s) {
  W4Matrix w;
  w.K = K;
  w.N = N;
  w.group_size = G;
  w.n_groups = K / G;
  w.group_len = (G + W4Matrix::kSubK - 1) / W4Matrix::kSubK * W4Matrix::kSubK;
  w.data.assign((size_t)w.n_tiles() * w.tile_stride(), 0u);
  const int n_tiles = w.n_tiles();
#pragma omp parallel for schedule(static)
  for (int t = 0; t < n_tiles; ++t) {
    for (int g = 0; g < w.n_groups; ++g) {
      uint8_t* blk = w.data.data() + (size_t)t * w.tile_stride() + (size_t)g * w.group_stride();
      auto code = [&](int r, int kk) -> uint8_t {  // padding (kk >= G): code 0
        return kk < G ? (uint8_t)(q(8 * t + r, g * G + kk) & 0xF) : (uint8_t)0;
      };
      for (int b = 0; b < w.n_sub(); ++b)
        for (int r = 0; r < 8; ++r) {
          uint8_t* row = blk + W4Matrix::row_offset(r, b);
          for (int j = 0; j < 16; ++j)
            row[j] = (uint8_t)(code(r, 32 * b + j) | (code(r, 32 * b + 16 + j) << 4));
        }
      auto* hdr = reinterpret_cast<W4GroupHeader*>(blk + (size_t)w.n_sub() * W4Matrix::kSubBytes);
      for (int i = 0; i < 8; ++i) {
        hdr->scale[i] = f32_to_fp16(s(8 * t + i, g));  // exact: s is already an fp16 value
        hdr->zero[i] = (uint8_t)z(8 * t + i, g);
      }
    }
  }
  return w;
}

}  // namespace

Expected<W4Matrix> w4_from_codes(const uint8_t* q, const uint8_t* z, const float* s, int K, int N,
                                 int group_size) {
  AWQ_ASSIGN(const int G, check_shape("w4_from_codes", K, N, group_size));
  const int n_groups = K / G;
  for (size_t i = 0; i < (size_t)N * K; ++i)
    if (q[i] > 15)
      return make_error("w4_from_codes: code q[", i / K, "][", i % K, "] = ", (int)q[i],
                        " is outside [0, 15]");
  for (size_t i = 0; i < (size_t)N * n_groups; ++i) {
    if (z[i] > 15)
      return make_error("w4_from_codes: zero z[", i / n_groups, "][", i % n_groups,
                        "] = ", (int)z[i], " is outside [0, 15]");
    if (!std::isfinite(round_fp16(s[i])))
      return make_error("w4_from_codes: scale s[", i / n_groups, "][", i % n_groups, "] = ", s[i],
                        " is not finite in fp16");
  }
  return build(
      K, N, G, [&](int n, int k) { return q[(size_t)n * K + k]; },
      [&](int n, int g) { return z[(size_t)n * n_groups + g]; },
      [&](int n, int g) { return round_fp16(s[(size_t)n * n_groups + g]); });
}

Expected<W4Matrix> w4_from_awq(const int32_t* qweight, const int32_t* qzeros,
                               const uint16_t* scales_fp16, int K, int N, int group_size) {
  AWQ_ASSIGN(const int G, check_shape("w4_from_awq", K, N, group_size));
  const int n_groups = K / G, nw = N / 8;
  for (size_t i = 0; i < (size_t)n_groups * N; ++i) {
    const float sc = fp16_to_f32(scales_fp16[i]);
    if (!std::isfinite(sc))
      return make_error("w4_from_awq: scales[", i / N, "][", i % N, "] is not finite (fp16 0x",
                        (int)scales_fp16[i], ")");
  }
  auto nibble = [](int32_t word, int n) {
    return (uint32_t)(((uint32_t)word >> (4 * kAwqNibbleOf[n % 8])) & 0xFu);
  };
  return build(
      K, N, G, [&](int n, int k) { return nibble(qweight[(size_t)k * nw + n / 8], n); },
      [&](int n, int g) { return nibble(qzeros[(size_t)g * nw + n / 8], n); },
      [&](int n, int g) { return fp16_to_f32(scales_fp16[(size_t)g * N + n]); });
}

}  // namespace awq
