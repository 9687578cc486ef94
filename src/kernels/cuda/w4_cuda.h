// CUDA W4A16 kernels (AWQ GEMM layout read directly) and the fp16 element-wise kernels of the
// forward pass. Thin host API: raw device pointers, a status code per call, no allocation inside
// (the GEMV's split-K workspace is passed in). fp16 tensors are passed as uint16_t bit patterns so
// this header compiles as plain C++. All launches are asynchronous on `stream`.
//
// Weight tensors (device, as stored in the checkpoint, see docs/KERNELS.md and the spec §5):
//   qweight int32 [K][N/8], qzeros int32 [K/G][N/8], scales fp16 [K/G][N], pack order
//   [0,2,4,6,1,3,5,7]; W[n][k] = (q - z) * s.
#pragma once
#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

namespace awq::cuda {

enum class CudaStatus : int {
  Ok = 0,
  InvalidArgument = 1,  // shape / pointer / alignment not supported (see the function's comment)
  LaunchFailed = 2,     // cudaGetLastError() after the launch was not cudaSuccess
  NoDevice = 3,
};
const char* status_string(CudaStatus s);

// True when a CUDA device is present and usable (cudaGetDeviceCount succeeds and is > 0).
bool cuda_available();

struct W4Device {
  const int32_t* qweight = nullptr;  // [K][N/8]
  const int32_t* qzeros = nullptr;   // [K/G][N/8]
  const uint16_t* scales = nullptr;  // fp16 [K/G][N]
  int K = 0, N = 0, group_size = 0;  // group_size: K % G == 0 (-1 = per-channel); N % 8 == 0
};

// Supported shapes for the W4 kernels: N % 8 == 0, K % G == 0, G % 8 == 0 (or -1).
bool w4_shape_supported(const W4Device& w);

// Batch 1..8: split-K GEMV. fp16 x [M][K] -> fp16 y [M][N] (+ fp16 bias [N] if non-null), fp32
// accumulation. workspace: device fp32, at least w4_gemv_workspace_bytes(w, M) bytes.
constexpr int kGemvMaxBatch = 8;
size_t w4_gemv_workspace_bytes(const W4Device& w, int M);
CudaStatus w4a16_gemv(const W4Device& w, const uint16_t* x, int M, uint16_t* y,
                      const uint16_t* bias, float* workspace, size_t workspace_bytes,
                      cudaStream_t stream);

// Any batch (meant for M > 8): tiles of W dequantized to fp16 in shared memory, tensor-core
// WMMA 16x16x16 with fp32 accumulation. Same inputs and outputs as the GEMV, no workspace.
CudaStatus w4a16_gemm(const W4Device& w, const uint16_t* x, int M, uint16_t* y,
                      const uint16_t* bias, cudaStream_t stream);

// ---- fp16 element-wise kernels (fp32 math inside) ----
// out[r][:] = x[r][:] / sqrt(mean(x[r]^2) + eps) * weight[:]     x, out: [rows][dim]
CudaStatus rmsnorm_f16(const uint16_t* x, const uint16_t* weight, uint16_t* out, int rows, int dim,
                       float eps, cudaStream_t stream);
// Rotary embedding in place, HF "rotate_half" layout: pairs (i, i + head_dim/2).
// x: [n_tokens][n_heads][head_dim]; positions: int32 [n_tokens]; theta: base (e.g. 10000).
CudaStatus rope_f16(uint16_t* x, const int32_t* positions, int n_tokens, int n_heads, int head_dim,
                    float theta, cudaStream_t stream);
// out[i] = silu(gate[i]) * up[i]
CudaStatus silu_mul_f16(const uint16_t* gate, const uint16_t* up, uint16_t* out, size_t n,
                        cudaStream_t stream);
// out[i] = a[i] + b[i]   (out may alias a)
CudaStatus add_f16(const uint16_t* a, const uint16_t* b, uint16_t* out, size_t n,
                   cudaStream_t stream);
// Single-token attention over a KV cache (decode), grouped-query:
//   q: [n_heads][head_dim]; k_cache, v_cache: [n_ctx][n_kv_heads][head_dim]; out:
//   [n_heads][head_dim] out[h] = softmax(q[h] . k[t][h / (n_heads/n_kv_heads)] * scale) over t <
//   n_ctx, times v.
// n_heads % n_kv_heads == 0; head_dim <= 256; n_ctx >= 1 (scores kept in shared memory: n_ctx <=
// 16384).
CudaStatus attention_decode_f16(const uint16_t* q, const uint16_t* k_cache, const uint16_t* v_cache,
                                uint16_t* out, int n_ctx, int n_heads, int n_kv_heads, int head_dim,
                                float scale, cudaStream_t stream);

}  // namespace awq::cuda
