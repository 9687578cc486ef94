// Vector math for the forward pass: exp-based row operations (softmax, SiLU gating,
// log-sum-exp). One polynomial exp (Cephes expf: range reduction by ln 2 and a degree-6
// polynomial, |rel. error| < 3e-7 on [-87, 88]) in two builds: ref/vmath_ref.cpp (portable) and
// cpu/vmath_avx2.cpp (8 lanes with FMA), picked like the W4 kernels: w4_active_isa(), so
// AWQ_ISA=scalar forces the portable build. Inputs are clamped to [-87, 88] before exp.
#pragma once
#include <cstdint>

namespace awq {

// exp(x) with the polynomial above (portable build); for tests and scalar call sites.
float vexp(float x);

// Softmax over row[0, n_vis) in place; row[n_vis, n_total) set to 0 (masked keys).
void softmax_row(float* row, int n_vis, int n_total);

// u[i] *= silu(g[i]) = g[i] / (1 + exp(-g[i])), for i < n.
void silu_mul(const float* g, float* u, int64_t n);

// log(sum_j exp(x[j])) for j < n, the sum accumulated in double; *max_out = max_j x[j].
double log_sum_exp(const float* x, int n, float* max_out = nullptr);

namespace detail {
struct VmathKernels {
  void (*softmax_row)(float* row, int n_vis, int n_total);
  void (*silu_mul)(const float* g, float* u, int64_t n);
  double (*log_sum_exp)(const float* x, int n, float* max_out);
};
VmathKernels vmath_kernels_ref();
VmathKernels vmath_kernels_avx2();  // only on hosts with AVX2 + FMA
// The table for an ISA name of w4.h (Avx512 hosts use the AVX2 table).
const VmathKernels& vmath_kernels_active();
}  // namespace detail

}  // namespace awq
