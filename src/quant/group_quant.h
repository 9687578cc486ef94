// Group quantization of linear weights (AWQ spec §4): the reference quantize-dequantize
// used inside the scale/clip search, and the real quantization that produces codes.
//
// Arithmetic contract (this project's definition; tests/fixtures/quant pins it and
// scripts/gen_quant_fixtures.py is the independent numpy reference):
//   per (row, group of G consecutive input channels), computed in fp32:
//   asymmetric (zero_point):  range = max - min;  range = max(range, 1e-5)
//                             s = fp16(range / (2^b - 1))            <- rounded to fp16 FIRST
//                             z = clamp(-round(min / s), 0, 2^b - 1)
//                             q = clamp(round(w / s) + z, 0, 2^b - 1)
//                             w_hat = (q - z) * s
//   symmetric:                s = fp16(max(max|w|, 1e-5) / (2^(b-1) - 1))
//                             q = clamp(round(w / s), -2^(b-1), 2^(b-1) - 1);  w_hat = q * s
//   round = round half to even; '/' is an fp32 division (not a multiply by 1/s).
// (q - z) * s is exact in fp32 (|q - z| <= 255 and s has an 11-bit significand), so any loader
// that dequantizes in fp32 gets w_hat bit-exactly; a loader that dequantizes in fp16 (AutoAWQ's
// torch path, the GPU kernels) gets fp16(w_hat), i.e. w_hat rounded to fp16 once.
#pragma once
#include <cstdint>
#include <vector>

#include "core/status.h"

namespace awq {

struct QuantConfig {
  int w_bit = 4;          // 2..8
  int group_size = 128;   // -1 = one group per output row (G = K)
  bool zero_point = true; // asymmetric with an integer zero point (what vLLM/AutoAWQ GEMM need)
};

// The group size actually used for a layer with K inputs: K when group_size <= 0.
int effective_group(const QuantConfig& cfg, int K);

// Checks w_bit in [2, 8], group_size == -1 or > 0, K % G == 0, N > 0, K > 0.
// The error names `what` (e.g. a layer name) and says what to change.
Status check_quant_shape(const QuantConfig& cfg, int64_t N, int64_t K, const char* what = "weight");

// True when the AutoAWQ GEMM checkpoint format can hold this config (4 bits, zero point).
bool awq_gemm_supported(const QuantConfig& cfg);

// Quantize-dequantize the rows of W [N][K] in place with the contract above.
// Preconditions (programmer errors, not checked in release builds): check_quant_shape() ok.
// A trailing partial group (K % G != 0) is treated as its own group. NaN inputs give NaN outputs
// (at least in their own positions). Parallel over rows with OpenMP.
void fake_quantize(float* W, int64_t N, int64_t K, const QuantConfig& cfg);

// Quantized linear, logical weight W[N][K] (N outputs, K inputs), row-major like nn.Linear.
struct QuantizedLinear {
  int N = 0, K = 0, group_size = 0, w_bit = 4;  // group_size: the effective G (K % G == 0)
  bool zero_point = true;
  std::vector<uint8_t> q;        // [N][K] codes: asymmetric 0..2^b-1; symmetric q + 2^(b-1)
  std::vector<uint8_t> zeros;    // [N][K/G] zero points (symmetric: 2^(b-1))
  std::vector<uint16_t> scales;  // [N][K/G] fp16 bits
  int n_groups() const { return group_size > 0 ? K / group_size : 0; }
};

// Quantize W [N][K]. Errors: bad shape/config (check_quant_shape), non-finite weights or a scale
// that overflows fp16 (names row and column).
Expected<QuantizedLinear> quantize_linear(const float* W, int N, int K, const QuantConfig& cfg);

// W[n][k] = (q - z) * s in fp32; bit-identical to fake_quantize() on the same input.
void dequantize_linear(const QuantizedLinear& ql, float* W);

}  // namespace awq
