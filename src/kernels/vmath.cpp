// Dispatch of the vector math (kernels/vmath.h) by the W4 kernels' active ISA.
#include "kernels/vmath.h"

#include "kernels/w4.h"

namespace awq {
namespace detail {

const VmathKernels& vmath_kernels_active() {
  static const VmathKernels k =
      w4_active_isa() == Isa::Scalar ? vmath_kernels_ref() : vmath_kernels_avx2();
  return k;
}

}  // namespace detail

void softmax_row(float* row, int n_vis, int n_total) {
  detail::vmath_kernels_active().softmax_row(row, n_vis, n_total);
}

void silu_mul(const float* g, float* u, int64_t n) {
  detail::vmath_kernels_active().silu_mul(g, u, n);
}

double log_sum_exp(const float* x, int n, float* max_out) {
  return detail::vmath_kernels_active().log_sum_exp(x, n, max_out);
}

}  // namespace awq
