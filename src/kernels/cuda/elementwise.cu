// fp16 element-wise kernels of the forward pass (see w4_cuda.h); fp32 math inside.
#include <cuda_fp16.h>

#include "kernels/cuda/w4_cuda.h"

namespace awq::cuda {
namespace {

CudaStatus check_launch() {
  return cudaGetLastError() == cudaSuccess ? CudaStatus::Ok : CudaStatus::LaunchFailed;
}

// Block-wide sum; blockDim.x a multiple of 32, <= 1024.
__device__ float block_sum(float v) {
  __shared__ float warp_sums[32];
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  __syncthreads();  // warp_sums may still be read by a previous call
  if (lane == 0) warp_sums[warp] = v;
  __syncthreads();
  float t = 0.0f;
  for (int w = 0; w < (int)(blockDim.x / 32); ++w) t += warp_sums[w];
  return t;
}

__device__ float block_max(float v) {
  __shared__ float warp_max[32];
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  __syncthreads();
  if (lane == 0) warp_max[warp] = v;
  __syncthreads();
  float t = -INFINITY;
  for (int w = 0; w < (int)(blockDim.x / 32); ++w) t = fmaxf(t, warp_max[w]);
  return t;
}

__global__ void rmsnorm_kernel(const __half* x, const __half* weight, __half* out, int dim,
                               float eps) {
  const __half* xr = x + (size_t)blockIdx.x * dim;
  __half* orow = out + (size_t)blockIdx.x * dim;
  float ss = 0.0f;
  for (int i = threadIdx.x; i < dim; i += blockDim.x) {
    const float v = __half2float(xr[i]);
    ss += v * v;
  }
  const float inv = rsqrtf(block_sum(ss) / dim + eps);
  for (int i = threadIdx.x; i < dim; i += blockDim.x)
    orow[i] = __float2half(__half2float(xr[i]) * inv * __half2float(weight[i]));
}

__global__ void rope_kernel(__half* x, const int32_t* positions, int n_heads, int head_dim,
                            float theta) {
  const int token = blockIdx.x, half_dim = head_dim / 2;
  const float pos = (float)positions[token];
  for (int e = threadIdx.x; e < n_heads * half_dim; e += blockDim.x) {
    const int h = e / half_dim, i = e % half_dim;
    const float freq = powf(theta, -2.0f * i / head_dim);
    float sn, cs;
    sincosf(pos * freq, &sn, &cs);
    __half* p = x + ((size_t)token * n_heads + h) * head_dim;
    const float a = __half2float(p[i]), b = __half2float(p[i + half_dim]);
    p[i] = __float2half(a * cs - b * sn);
    p[i + half_dim] = __float2half(b * cs + a * sn);
  }
}

__global__ void silu_mul_kernel(const __half* gate, const __half* up, __half* out, size_t n) {
  const size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= n) return;
  const float g = __half2float(gate[i]);
  out[i] = __float2half(g / (1.0f + __expf(-g)) * __half2float(up[i]));
}

__global__ void add_kernel(const __half* a, const __half* b, __half* out, size_t n) {
  const size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= n) return;
  out[i] = __float2half(__half2float(a[i]) + __half2float(b[i]));
}

// One block per query head; scores for all positions in dynamic shared memory.
__global__ void attention_decode_kernel(const __half* q, const __half* k_cache,
                                        const __half* v_cache, __half* out, int n_ctx, int n_heads,
                                        int n_kv_heads, int head_dim, float scale) {
  extern __shared__ float smem[];  // [head_dim] q, then [n_ctx] scores
  float* qs = smem;
  float* scores = smem + head_dim;
  const int h = blockIdx.x, kvh = h / (n_heads / n_kv_heads);
  for (int d = threadIdx.x; d < head_dim; d += blockDim.x)
    qs[d] = __half2float(q[(size_t)h * head_dim + d]);
  __syncthreads();
  float local_max = -INFINITY;
  for (int t = threadIdx.x; t < n_ctx; t += blockDim.x) {
    const __half* kr = k_cache + ((size_t)t * n_kv_heads + kvh) * head_dim;
    float dot = 0.0f;
    for (int d = 0; d < head_dim; ++d) dot += qs[d] * __half2float(kr[d]);
    scores[t] = dot * scale;
    local_max = fmaxf(local_max, dot * scale);
  }
  const float mx = block_max(local_max);
  float local_sum = 0.0f;
  for (int t = threadIdx.x; t < n_ctx; t += blockDim.x) {
    const float e = __expf(scores[t] - mx);
    scores[t] = e;
    local_sum += e;
  }
  const float inv = 1.0f / block_sum(local_sum);  // block_sum syncs: scores are visible after
  for (int d = threadIdx.x; d < head_dim; d += blockDim.x) {
    float acc = 0.0f;
    for (int t = 0; t < n_ctx; ++t)
      acc += scores[t] * __half2float(v_cache[((size_t)t * n_kv_heads + kvh) * head_dim + d]);
    out[(size_t)h * head_dim + d] = __float2half(acc * inv);
  }
}

}  // namespace

CudaStatus rmsnorm_f16(const uint16_t* x, const uint16_t* weight, uint16_t* out, int rows, int dim,
                       float eps, cudaStream_t stream) {
  if (!x || !weight || !out || rows < 0 || dim <= 0) return CudaStatus::InvalidArgument;
  if (rows == 0) return CudaStatus::Ok;
  rmsnorm_kernel<<<rows, 256, 0, stream>>>(reinterpret_cast<const __half*>(x),
                                           reinterpret_cast<const __half*>(weight),
                                           reinterpret_cast<__half*>(out), dim, eps);
  return check_launch();
}

CudaStatus rope_f16(uint16_t* x, const int32_t* positions, int n_tokens, int n_heads, int head_dim,
                    float theta, cudaStream_t stream) {
  if (!x || !positions || n_tokens < 0 || n_heads <= 0 || head_dim <= 0 || head_dim % 2)
    return CudaStatus::InvalidArgument;
  if (n_tokens == 0) return CudaStatus::Ok;
  rope_kernel<<<n_tokens, 256, 0, stream>>>(reinterpret_cast<__half*>(x), positions, n_heads,
                                            head_dim, theta);
  return check_launch();
}

CudaStatus silu_mul_f16(const uint16_t* gate, const uint16_t* up, uint16_t* out, size_t n,
                        cudaStream_t stream) {
  if (!gate || !up || !out) return CudaStatus::InvalidArgument;
  if (n == 0) return CudaStatus::Ok;
  silu_mul_kernel<<<(unsigned)((n + 255) / 256), 256, 0, stream>>>(
      reinterpret_cast<const __half*>(gate), reinterpret_cast<const __half*>(up),
      reinterpret_cast<__half*>(out), n);
  return check_launch();
}

CudaStatus add_f16(const uint16_t* a, const uint16_t* b, uint16_t* out, size_t n,
                   cudaStream_t stream) {
  if (!a || !b || !out) return CudaStatus::InvalidArgument;
  if (n == 0) return CudaStatus::Ok;
  add_kernel<<<(unsigned)((n + 255) / 256), 256, 0, stream>>>(reinterpret_cast<const __half*>(a),
                                                              reinterpret_cast<const __half*>(b),
                                                              reinterpret_cast<__half*>(out), n);
  return check_launch();
}

CudaStatus attention_decode_f16(const uint16_t* q, const uint16_t* k_cache, const uint16_t* v_cache,
                                uint16_t* out, int n_ctx, int n_heads, int n_kv_heads, int head_dim,
                                float scale, cudaStream_t stream) {
  if (!q || !k_cache || !v_cache || !out || n_ctx < 1 || n_ctx > 16384 || n_heads <= 0 ||
      n_kv_heads <= 0 || n_heads % n_kv_heads || head_dim <= 0 || head_dim > 256)
    return CudaStatus::InvalidArgument;
  const size_t smem = sizeof(float) * ((size_t)head_dim + n_ctx);
  if (smem > 48 * 1024) {
    // Above the default dynamic shared-memory limit: opt in (up to the device maximum).
    if (cudaFuncSetAttribute(attention_decode_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                             (int)smem) != cudaSuccess)
      return CudaStatus::InvalidArgument;
  }
  attention_decode_kernel<<<n_heads, 128, smem, stream>>>(
      reinterpret_cast<const __half*>(q), reinterpret_cast<const __half*>(k_cache),
      reinterpret_cast<const __half*>(v_cache), reinterpret_cast<__half*>(out), n_ctx, n_heads,
      n_kv_heads, head_dim, scale);
  return check_launch();
}

const char* status_string(CudaStatus s) {
  switch (s) {
    case CudaStatus::Ok:
      return "ok";
    case CudaStatus::InvalidArgument:
      return "invalid argument (unsupported shape or null pointer)";
    case CudaStatus::LaunchFailed:
      return "kernel launch failed";
    case CudaStatus::NoDevice:
      return "no CUDA device";
  }
  return "unknown";
}

bool cuda_available() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky error from a missing driver/device
    return false;
  }
  return n > 0;
}

}  // namespace awq::cuda
