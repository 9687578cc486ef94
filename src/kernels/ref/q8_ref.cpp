// Portable build of the 8-bit weight matmul (kernels/q8_matmul.h): the integer contract written
// out, y = sum_b (d_w * dx) * (exact int32 dot of the block), summed over blocks in order.
#include "core/half.h"
#include "kernels/q8_matmul.h"

namespace awq {
namespace {

void q8_rows_scalar(const Q8Matrix& w, const int8_t* xq, const float* xd, int M, int n0, int n1,
                    float* y, int ldy) {
  const int Kp = w.k_padded, nb = w.n_blk();
  for (int n = n0; n < n1; ++n) {
    for (int m = 0; m < M; ++m) {
      const int8_t* xr = xq + (size_t)m * Kp;
      float acc = 0.0f;
      for (int b = 0; b < nb; ++b) {
        int32_t dot = 0;
        for (int i = 0; i < Q8Matrix::kBlock; ++i) {
          const int k = b * Q8Matrix::kBlock + i;
          dot += (int32_t)w.code(n, k) * xr[k];
        }
        acc += (fp16_to_f32(w.scale(n, b)) * xd[(size_t)m * nb + b]) * (float)dot;
      }
      y[(size_t)m * ldy + n] = acc;
    }
  }
}

}  // namespace

namespace detail {
Q8RowsFn q8_rows_ref() { return q8_rows_scalar; }
}  // namespace detail

}  // namespace awq
