// Portable build of the fp16-weight matmul (kernels/f16_matmul.h).
#include "core/half.h"
#include "kernels/f16_matmul.h"

namespace awq {
namespace {

void f16_rows_scalar(const uint16_t* w, int K, const float* x, int M, int n0, int n1, float* y,
                     int ldy) {
  for (int n = n0; n < n1; ++n) {
    const uint16_t* wr = w + (size_t)n * K;
    for (int m = 0; m < M; ++m) {
      const float* xr = x + (size_t)m * K;
      float acc = 0.0f;
      for (int k = 0; k < K; ++k) acc += fp16_to_f32(wr[k]) * xr[k];
      y[(size_t)m * ldy + n] = acc;
    }
  }
}

}  // namespace

namespace detail {
F16RowsFn f16_rows_ref() { return f16_rows_scalar; }
}  // namespace detail

}  // namespace awq
