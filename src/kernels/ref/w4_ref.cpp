#include "kernels/ref/w4_ref.h"

#include <cmath>
#include <cstring>
#include <vector>

#include "core/half.h"
#include "kernels/cpu/w4_kernels.h"

namespace awq::ref {
namespace {

// Code of row n at k local to group g (k < w.group_len; padding reads 0).
inline uint8_t code_at(const W4Matrix& w, int n, int g, int kk) {
  const uint8_t byte = w.group_block(n / 8, g)[W4Matrix::row_offset(n % 8, kk / 32) + kk % 16];
  return (uint8_t)(kk % 32 < 16 ? byte & 0xFu : byte >> 4);
}

// Dequantize W[n][g*G .. g*G + G) for one group g into out[0 .. G).
void dequant_group(const W4Matrix& w, int n, int g, float* out) {
  const float s = w4_scale(w, n, g);
  const int z = w4_zero(w, n, g);
  for (int kk = 0; kk < w.group_size; ++kk) out[kk] = (float)((int)code_at(w, n, g, kk) - z) * s;
}

}  // namespace

uint8_t w4_code(const W4Matrix& w, int n, int k) {
  const int g = k / w.group_size;
  return code_at(w, n, g, k - g * w.group_size);
}

float w4_scale(const W4Matrix& w, int n, int g) {
  return fp16_to_f32(w.group_header(n / 8, g)->scale[n % 8]);
}

uint8_t w4_zero(const W4Matrix& w, int n, int g) { return w.group_header(n / 8, g)->zero[n % 8]; }

void w4_dequantize(const W4Matrix& w, float* out) {
  for (int n = 0; n < w.N; ++n)
    for (int g = 0; g < w.n_groups; ++g)
      dequant_group(w, n, g, out + (size_t)n * w.K + (size_t)g * w.group_size);
}

void w4_matmul(const W4Matrix& w, const float* x, int M, float* y, const float* bias) {
  std::vector<float> row(w.K);
  for (int n = 0; n < w.N; ++n) {
    for (int g = 0; g < w.n_groups; ++g)
      dequant_group(w, n, g, row.data() + (size_t)g * w.group_size);
    for (int m = 0; m < M; ++m) {
      const float* xm = x + (size_t)m * w.K;
      float acc = 0.0f;
      for (int k = 0; k < w.K; ++k) acc += xm[k] * row[k];
      y[(size_t)m * w.N + n] = acc + (bias ? bias[n] : 0.0f);
    }
  }
}

}  // namespace awq::ref

namespace awq::detail {
namespace {

// F32 path: x is laid out per padded group (see W4DecodeArgs), so row k index g*G + kk of the
// dequantized row meets x[g * group_len + kk].
void decode_scalar(const W4Matrix& w, const W4DecodeArgs& a, int tile_begin, int tile_end) {
  std::vector<float> row(w.group_size);
  for (int n = 8 * tile_begin; n < 8 * tile_end; ++n) {
    for (int m = 0; m < a.M; ++m) {
      const float* xm = a.x + (size_t)m * a.ldx;
      float acc = 0.0f;
      for (int g = 0; g < w.n_groups; ++g) {
        ref::dequant_group(w, n, g, row.data());
        for (int kk = 0; kk < w.group_size; ++kk) acc += xm[(size_t)g * w.group_len + kk] * row[kk];
      }
      a.y[(size_t)m * a.ldy + n] = acc + (a.bias ? a.bias[n] : 0.0f);
    }
  }
}

// I8 path, the integer contract the AVX2 kernel implements:
//   y[m][n] = sum_g  s * (sum_j d_j * dot_j) - (z * s) * xqs[g],   dot_j = sum_k q * xq (int32)
// with sum_j over the group's activation blocks (w.act_sub() 32-value sub-blocks each; padding
// codes and activations are 0).
void decode_i8_scalar(const W4Matrix& w, const W4DecodeArgs& a, int tile_begin, int tile_end) {
  const int nb = w.n_sub(), ab = w.act_sub(), na = w.n_act();
  for (int n = 8 * tile_begin; n < 8 * tile_end; ++n) {
    const int t = n / 8, r = n % 8;
    for (int m = 0; m < a.M; ++m) {
      const int8_t* xq = a.xq + (size_t)m * a.ldxq;
      const float* xd = a.xd + (size_t)m * a.ldxd;
      const float* xqs = a.xqs + (size_t)m * w.n_groups;
      float acc = 0.0f;
      for (int g = 0; g < w.n_groups; ++g) {
        const uint8_t* blk = w.group_block(t, g);
        float ga = 0.0f;
        for (int j = 0; j < na; ++j) {
          int32_t dot = 0;
          for (int b = j * ab; b < (j + 1) * ab; ++b) {
            const uint8_t* c = blk + W4Matrix::row_offset(r, b);
            const int8_t* xb = xq + (size_t)(g * nb + b) * 64;
            for (int e = 0; e < 16; ++e) dot += (c[e] & 0xF) * xb[e] + (c[e] >> 4) * xb[32 + e];
          }
          ga += (float)dot * xd[g * na + j];
        }
        const float s = ref::w4_scale(w, n, g);
        const float zs = (float)ref::w4_zero(w, n, g) * s;
        acc += s * ga - zs * xqs[g];
      }
      a.y[(size_t)m * a.ldy + n] = acc + (a.bias ? a.bias[n] : 0.0f);
    }
  }
}

void dequant_scalar(const W4Matrix& w, int tile_begin, int tile_end, float* out, size_t ldo) {
  for (int n = 8 * tile_begin; n < 8 * tile_end; ++n)
    for (int g = 0; g < w.n_groups; ++g)
      ref::dequant_group(w, n, g,
                         out + (size_t)(n - 8 * tile_begin) * ldo + (size_t)g * w.group_size);
}

}  // namespace

W4Kernels w4_kernels_scalar() {
  return {Isa::Scalar, decode_scalar, decode_i8_scalar, dequant_scalar};
}

}  // namespace awq::detail
