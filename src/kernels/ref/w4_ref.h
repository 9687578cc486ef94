// Scalar reference for the W4 layout: element accessors and the textbook kernels
// (dequantize (q - z) * s, then a plain dot product). This is the contract the fast kernels are
// tested against; it is also the Isa::Scalar path.
#pragma once
#include <cstdint>

#include "kernels/w4.h"

namespace awq::ref {

// Read back one code / zero / scale from the repacked layout.
uint8_t w4_code(const W4Matrix& w, int n, int k);
uint8_t w4_zero(const W4Matrix& w, int n, int g);
float w4_scale(const W4Matrix& w, int n, int g);

// out[N][K] = (q - z) * s
void w4_dequantize(const W4Matrix& w, float* out);
// y[M][N] = x[M][K] · W^T (+ bias), fp32 accumulation in k order.
void w4_matmul(const W4Matrix& w, const float* x, int M, float* y, const float* bias);

}  // namespace awq::ref
