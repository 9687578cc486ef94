#include "quant/awq_pack.h"

#include <cstring>

namespace awq {

Expected<AwqGemmTensors> pack_awq_gemm(const QuantizedLinear& ql) {
  if (ql.w_bit != 4)
    return make_error("pack_awq_gemm: the AutoAWQ GEMM format holds 4-bit weights only (got w_bit ",
                      ql.w_bit, ")");
  if (!ql.zero_point)
    return make_error("pack_awq_gemm: the AutoAWQ GEMM format needs zero_point (asymmetric) "
                      "quantization; this layer was quantized symmetrically");
  const int K = ql.K, N = ql.N, G = ql.group_size;
  if (N <= 0 || K <= 0 || N % 8 != 0)
    return make_error("pack_awq_gemm: output size N = ", N,
                      " must be a positive multiple of 8 (8 columns per int32)");
  if (G <= 0 || K % G != 0)
    return make_error("pack_awq_gemm: input size K = ", K, " is not a multiple of group_size ", G);
  const int n_groups = K / G, NP = N / 8;
  if (ql.q.size() != size_t(N) * K || ql.zeros.size() != size_t(N) * n_groups ||
      ql.scales.size() != size_t(N) * n_groups)
    return make_error("pack_awq_gemm: QuantizedLinear arrays do not match N=", N, " K=", K,
                      " G=", G);

  AwqGemmTensors t;
  t.K = K;
  t.N = N;
  t.group_size = G;
  t.qweight.assign(size_t(K) * NP, 0);
  t.qzeros.assign(size_t(n_groups) * NP, 0);
  t.scales.resize(size_t(n_groups) * N);
  for (int k = 0; k < K; ++k) {
    for (int j = 0; j < NP; ++j) {
      uint32_t word = 0;
      for (int i = 0; i < 8; ++i) {
        const int n = 8 * j + kAwqPackOrder[i];
        word |= uint32_t(ql.q[size_t(n) * K + k] & 0xF) << (4 * i);
      }
      t.qweight[size_t(k) * NP + j] = int32_t(word);
    }
  }
  for (int g = 0; g < n_groups; ++g) {
    for (int j = 0; j < NP; ++j) {
      uint32_t word = 0;
      for (int i = 0; i < 8; ++i) {
        const int n = 8 * j + kAwqPackOrder[i];
        word |= uint32_t(ql.zeros[size_t(n) * n_groups + g] & 0xF) << (4 * i);
      }
      t.qzeros[size_t(g) * NP + j] = int32_t(word);
    }
    for (int n = 0; n < N; ++n) t.scales[size_t(g) * N + n] = ql.scales[size_t(n) * n_groups + g];
  }
  return t;
}

Expected<QuantizedLinear> unpack_awq_gemm(const int32_t* qweight, const int32_t* qzeros,
                                          const uint16_t* scales, int K, int N, int group_size) {
  if (N <= 0 || N % 8 != 0)
    return make_error("unpack_awq_gemm: output size N = ", N, " must be a positive multiple of 8");
  if (K <= 0 || group_size <= 0 || K % group_size != 0)
    return make_error("unpack_awq_gemm: input size K = ", K,
                      " is not a positive multiple of group_size ", group_size);
  const int G = group_size, n_groups = K / G, NP = N / 8;
  QuantizedLinear ql;
  ql.N = N;
  ql.K = K;
  ql.group_size = G;
  ql.w_bit = 4;
  ql.zero_point = true;
  ql.q.resize(size_t(N) * K);
  ql.zeros.resize(size_t(N) * n_groups);
  ql.scales.resize(size_t(N) * n_groups);
  for (int k = 0; k < K; ++k) {
    for (int j = 0; j < NP; ++j) {
      const uint32_t word = uint32_t(qweight[size_t(k) * NP + j]);
      for (int i = 0; i < 8; ++i)
        ql.q[size_t(8 * j + kAwqPackOrder[i]) * K + k] = uint8_t((word >> (4 * i)) & 0xF);
    }
  }
  for (int g = 0; g < n_groups; ++g) {
    for (int j = 0; j < NP; ++j) {
      const uint32_t word = uint32_t(qzeros[size_t(g) * NP + j]);
      for (int i = 0; i < 8; ++i)
        ql.zeros[size_t(8 * j + kAwqPackOrder[i]) * n_groups + g] = uint8_t((word >> (4 * i)) & 0xF);
    }
    for (int n = 0; n < N; ++n) ql.scales[size_t(n) * n_groups + g] = scales[size_t(g) * N + n];
  }
  return ql;
}

std::vector<std::string> vllm_tp_warnings(const std::string& layer_name, int K, int N,
                                          const QuantConfig& cfg, bool row_parallel) {
  std::vector<std::string> out;
  const std::string who = layer_name + " [out " + std::to_string(N) + ", in " + std::to_string(K) +
                          "]: ";
  if (cfg.w_bit != 4)
    out.push_back(who + "vLLM loads AWQ checkpoints with 4 bits only (w_bit " +
                  std::to_string(cfg.w_bit) + ")");
  if (!cfg.zero_point)
    out.push_back(who + "vLLM's AWQ kernels need zero_point (asymmetric) quantization");
  const int G = cfg.group_size;
  if (G != -1 && G != 32 && G != 64 && G != 128)
    out.push_back(who + "group_size " + std::to_string(G) +
                  " is not one of vLLM's awq_marlin sizes {-1, 32, 64, 128}: slow awq path only");
  if (G == -1)
    out.push_back(who + "group_size -1 (per-channel) loads only through vLLM's awq_marlin path "
                  "(the plain awq kernel needs a positive group size)");
  const char* split = row_parallel ? "row-parallel, input split" : "column-parallel, output split";
  for (int tp : {1, 2, 4, 8}) {
    const int splitted = row_parallel ? K : N;
    const std::string at = who + "tp=" + std::to_string(tp) + " (" + split + "): ";
    if (splitted % tp != 0) {
      out.push_back(at + (row_parallel ? "input size " : "output size ") +
                    std::to_string(splitted) + " is not divisible by " + std::to_string(tp) +
                    ": will not load");
      continue;
    }
    const int k_shard = row_parallel ? K / tp : K;
    const int n_shard = row_parallel ? N : N / tp;
    bool loads = true;
    if (G > 0 && k_shard % G != 0) {
      out.push_back(at + "input per shard " + std::to_string(k_shard) +
                    " is not a multiple of group_size " + std::to_string(G) + ": will not load");
      loads = false;
    }
    if (n_shard % 8 != 0) {
      out.push_back(at + "output per shard " + std::to_string(n_shard) +
                    " is not a multiple of 8 (int32 pack factor): will not load");
      loads = false;
    }
    if (!loads) continue;
    if (n_shard % 64 != 0)
      out.push_back(at + "output per shard " + std::to_string(n_shard) +
                    " is not a multiple of 64: awq_marlin falls back to the slower awq kernel");
    else if (k_shard % 128 != 0)
      out.push_back(at + "input per shard " + std::to_string(k_shard) +
                    " is not a multiple of 128: awq_marlin falls back to the slower awq kernel");
  }
  return out;
}

}  // namespace awq
