// fp16-weight matmul for small M (decode): y[M][N] = x[M][K] · W[N][K]^T, W in IEEE fp16
// (row-major, torch layout), fp32 accumulation. Used for the lm_head of AWQ checkpoints, which
// store it in fp16: reading it as fp16 halves its bytes per token at no accuracy cost.
// Portable build (ref/f16_ref.cpp) and AVX2+F16C build (cpu/f16_avx2.cpp), picked by
// w4_active_isa() (AWQ_ISA=scalar forces the portable one).
#pragma once
#include <cstdint>

namespace awq {

void f16_matmul(const uint16_t* w, int N, int K, const float* x, int M, float* y);

namespace detail {
// Rows [n0, n1) of y for all M rows of x (single-threaded; the driver splits N).
using F16RowsFn = void (*)(const uint16_t* w, int K, const float* x, int M, int n0, int n1,
                           float* y, int ldy);
F16RowsFn f16_rows_ref();
F16RowsFn f16_rows_avx2();
void f16_matmul_with(F16RowsFn fn, const uint16_t* w, int N, int K, const float* x, int M, float* y);
}  // namespace detail

}  // namespace awq
