// AutoAWQ "GEMM" packing (AWQ spec §5, docs/FORMAT.md) and vLLM loadability checks.
//
// For a linear with K inputs, N outputs, group size G (N % 8 == 0, K % G == 0), 4 bits:
//   qweight int32 [K][N/8]:   qweight[k][j] = OR_i (q[8j + kAwqPackOrder[i]][k] & 0xF) << 4i
//   qzeros  int32 [K/G][N/8]: qzeros[g][j]  = OR_i (z[8j + kAwqPackOrder[i]][g] & 0xF) << 4i
//   scales  fp16  [K/G][N]:   scales[g][n]  = s[n][g]
// Zeros are stored as-is in [0, 15] (no GPTQ-style -1 offset).
#pragma once
#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "core/status.h"
#include "quant/group_quant.h"

namespace awq {

// Nibble i of a packed int32 holds output column 8j + kAwqPackOrder[i].
inline constexpr std::array<int, 8> kAwqPackOrder = {0, 2, 4, 6, 1, 3, 5, 7};

struct AwqGemmTensors {
  int K = 0, N = 0, group_size = 0;
  std::vector<int32_t> qweight;   // [K][N/8]
  std::vector<int32_t> qzeros;    // [K/G][N/8]
  std::vector<uint16_t> scales;   // [K/G][N] fp16 bits
};

// 4-bit zero-point layers only; errors say why (bits, symmetric, N % 8, K % G).
Expected<AwqGemmTensors> pack_awq_gemm(const QuantizedLinear& ql);

// Inverse of pack_awq_gemm. group_size must be the effective G (> 0, K % G == 0). Validates
// shapes only; every 4-bit code is valid.
Expected<QuantizedLinear> unpack_awq_gemm(const int32_t* qweight, const int32_t* qzeros,
                                          const uint16_t* scales, int K, int N, int group_size);

// Would vLLM load this layer with tensor parallelism 1/2/4/8? Row-parallel layers (o_proj,
// down_proj) are split along K, column-parallel ones (q/k/v/gate/up) along N. Checks per shard:
// input % G (awq), output % 8 (awq pack factor), output % 64 and input % 128 (awq_marlin), plus
// the config itself (bits 4, zero point, G in {-1, 32, 64, 128}). Returns one human-readable line
// per problem, each naming the layer; empty when every tp loads.
std::vector<std::string> vllm_tp_warnings(const std::string& layer_name, int K, int N,
                                          const QuantConfig& cfg, bool row_parallel);

}  // namespace awq
