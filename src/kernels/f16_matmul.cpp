// Driver of the fp16-weight matmul: splits the N rows across OpenMP threads in chunks.
#include "kernels/f16_matmul.h"

#include <omp.h>

#include <algorithm>

#include "kernels/w4.h"

namespace awq {
namespace detail {

void f16_matmul_with(F16RowsFn fn, const uint16_t* w, int N, int K, const float* x, int M,
                     float* y) {
  constexpr int kChunk = 256;  // rows per task: 256 x K fp16 (288 KiB at K = 576)
  const int n_chunks = (N + kChunk - 1) / kChunk;
#pragma omp parallel for schedule(dynamic, 1) if (n_chunks > 1)
  for (int c = 0; c < n_chunks; ++c)
    fn(w, K, x, M, c * kChunk, std::min(N, (c + 1) * kChunk), y, N);
}

}  // namespace detail

void f16_matmul(const uint16_t* w, int N, int K, const float* x, int M, float* y) {
  static const detail::F16RowsFn fn =
      w4_active_isa() == Isa::Scalar ? detail::f16_rows_ref() : detail::f16_rows_avx2();
  detail::f16_matmul_with(fn, w, N, K, x, M, y);
}

}  // namespace awq
