#include "kernels/ref/w4_ref.h"

#include <cmath>
#include <cstring>
#include <vector>

#include "core/half.h"
#include "kernels/cpu/w4_kernels.h"

namespace awq::ref {
namespace {

// Dequantize W[n][k0 .. k0+len) for one group g into out[0 .. len).
void dequant_group(const W4Matrix& w, int n, int g, float* out) {
  const uint32_t* blk = w.group_block(n / 8, g);
  const int i = n % 8;
  const float s = w4_scale(w, n, g);
  const int z = w4_zero(w, n, g);
  const int len = w.n_groups == 1 ? w.K : w.group_size;
  for (int kk = 0; kk < len; ++kk) {
    uint32_t code = (blk[kk] >> (4 * i)) & 0xFu;
    if (i == 7) code ^= 8u;
    out[kk] = (float)((int)code - z) * s;
  }
}

}  // namespace

uint8_t w4_code(const W4Matrix& w, int n, int k) {
  const int g = k / w.group_size;
  const uint32_t word = w.group_block(n / 8, g)[k - g * w.group_size];
  const uint32_t code = (word >> (4 * (n % 8))) & 0xFu;
  return (uint8_t)(n % 8 == 7 ? code ^ 8u : code);
}

float w4_scale(const W4Matrix& w, int n, int g) {
  return fp16_to_f32(w.group_header(n / 8, g)->scale[n % 8]);
}

uint8_t w4_zero(const W4Matrix& w, int n, int g) {
  return (uint8_t)(w.group_header(n / 8, g)->zero[n % 8] + (n % 8 == 7 ? 8 : 0));
}

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

void decode_scalar(const W4Matrix& w, const W4DecodeArgs& a, int tile_begin, int tile_end) {
  std::vector<float> row(w.K);
  for (int n = 8 * tile_begin; n < 8 * tile_end; ++n) {
    for (int g = 0; g < w.n_groups; ++g)
      ref::dequant_group(w, n, g, row.data() + (size_t)g * w.group_size);
    for (int m = 0; m < a.M; ++m) {
      const float* xm = a.x + (size_t)m * a.ldx;
      float acc = 0.0f;
      for (int k = 0; k < w.K; ++k) acc += xm[k] * row[k];
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

W4Kernels w4_kernels_scalar() { return {Isa::Scalar, decode_scalar, dequant_scalar}; }

}  // namespace awq::detail
