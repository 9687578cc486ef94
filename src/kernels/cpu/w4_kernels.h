// Internal: the per-ISA W4 kernel entry points behind w4_matmul / w4_dequantize.
// Each ISA lives in its own file (ref/w4_ref.cpp, cpu/w4_avx2.cpp, cpu/w4_avx512.cpp), compiled
// with its own flags; cpu/dispatch.cpp picks one table per call.
#pragma once
#include <string>

#include "kernels/w4.h"

namespace awq::detail {

// Inputs of the weight-streaming (decode) kernel, prepared by the driver (w4_matmul.cpp).
struct W4DecodeArgs {
  const float* x;     // [M][ldx], zero-padded to w.k_padded() columns
  int ldx;            // >= w.k_padded()
  int M;              // rows of x
  const float* xsum;  // [M][w.n_groups]: sum of x over each group
  float* y;           // [M][ldy]
  int ldy;            // >= w.N
  const float* bias;  // [N] or nullptr
};

// y rows for output tiles [tile_begin, tile_end) (rows 8*tile_begin ..). Single-threaded; the
// driver splits tiles across threads.
using W4DecodeFn = void (*)(const W4Matrix& w, const W4DecodeArgs& a, int tile_begin, int tile_end);
// out[r][k] = W[8*tile_begin + r][k] for k < w.K (bit-exact (q - z) * s); ldo >= w.K.
using W4DequantFn = void (*)(const W4Matrix& w, int tile_begin, int tile_end, float* out,
                             size_t ldo);

struct W4Kernels {
  Isa isa;
  W4DecodeFn decode;
  W4DequantFn dequant;
};

W4Kernels w4_kernels_scalar();
W4Kernels w4_kernels_avx2();    // only call when the host has AVX2+FMA+F16C+BMI2
W4Kernels w4_kernels_avx512();  // only call when the host has the AVX-512 set in CMakeLists

// What AWQ_ISA=<requested> selects on this host (nullptr/empty: the best available). Sets
// *warning when the request is unknown or unsupported and a fallback was chosen.
Isa w4_resolve_isa(const char* requested, std::string* warning);

// The table for an ISA (must be available on this host).
const W4Kernels& w4_kernels(Isa isa);

}  // namespace awq::detail
