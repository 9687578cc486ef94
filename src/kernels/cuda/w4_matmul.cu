// W4A16 kernels on the AutoAWQ GEMM layout (see w4_cuda.h). Kept deliberately simple:
//  - gemv_kernel: one thread per packed column j (8 outputs) and k-stride; split-K over
//    blockIdx.y into an fp32 workspace, then reduce_kernel adds the splits and the bias.
//  - gemm_kernel: 64x64 output tile per block of 4 warps; per 32-deep k-slice the x tile and the
//    dequantized W^T tile (fp16) go to shared memory and WMMA 16x16x16 accumulates in fp32.
#include <cuda_fp16.h>
#include <mma.h>

#include <algorithm>

#include "kernels/cuda/w4_cuda.h"

namespace awq::cuda {
namespace {

// AutoAWQ: nibble i of a packed word holds output column kOrder[i] of its 8.
__device__ __forceinline__ int awq_column(int i) { return i < 4 ? 2 * i : 2 * (i - 4) + 1; }

constexpr int kGemvCols = 32;  // packed columns per block (threadIdx.x)
constexpr int kGemvRows = 8;   // k-stride threads per block (threadIdx.y)

int gemv_splits(const W4Device& w) {
  const int blocks_x = (w.N / 8 + kGemvCols - 1) / kGemvCols;
  const int want = (256 + blocks_x - 1) / blocks_x;  // ~256 blocks in flight
  return std::max(1, std::min(want, w.K / 64));
}

template <int M>
__global__ void gemv_kernel(const int32_t* __restrict__ qweight, const int32_t* __restrict__ qzeros,
                            const __half* __restrict__ scales, const __half* __restrict__ x, int K,
                            int N, int G, int k_chunk, float* __restrict__ partial) {
  const int nw = N / 8;
  const int j = blockIdx.x * kGemvCols + threadIdx.x;
  const int k_begin = blockIdx.y * k_chunk;
  const int k_end = min(K, k_begin + k_chunk);
  float acc[M][8];
#pragma unroll
  for (int m = 0; m < M; ++m)
#pragma unroll
    for (int i = 0; i < 8; ++i) acc[m][i] = 0.0f;
  if (j < nw) {
    int g_loaded = -1;
    float s[8], sz[8];
    for (int k = k_begin + threadIdx.y; k < k_end; k += kGemvRows) {
      const int g = k / G;
      if (g != g_loaded) {
        const uint32_t zw = (uint32_t)qzeros[(size_t)g * nw + j];
#pragma unroll
        for (int i = 0; i < 8; ++i) {
          s[i] = __half2float(scales[(size_t)g * N + 8 * j + awq_column(i)]);
          sz[i] = -(float)((zw >> (4 * i)) & 0xF) * s[i];
        }
        g_loaded = g;
      }
      const uint32_t qw = (uint32_t)qweight[(size_t)k * nw + j];
      float xv[M];
#pragma unroll
      for (int m = 0; m < M; ++m) xv[m] = __half2float(x[(size_t)m * K + k]);
#pragma unroll
      for (int i = 0; i < 8; ++i) {
        const float wv = fmaf((float)((qw >> (4 * i)) & 0xF), s[i], sz[i]);
#pragma unroll
        for (int m = 0; m < M; ++m) acc[m][i] = fmaf(wv, xv[m], acc[m][i]);
      }
    }
  }
  __shared__ float red[kGemvRows][kGemvCols][9];
  for (int m = 0; m < M; ++m) {
#pragma unroll
    for (int i = 0; i < 8; ++i) red[threadIdx.y][threadIdx.x][i] = acc[m][i];
    __syncthreads();
    if (threadIdx.y == 0 && j < nw) {
      for (int i = 0; i < 8; ++i) {
        float sum = 0.0f;
        for (int y = 0; y < kGemvRows; ++y) sum += red[y][threadIdx.x][i];
        partial[((size_t)blockIdx.y * M + m) * N + 8 * j + awq_column(i)] = sum;
      }
    }
    __syncthreads();
  }
}

__global__ void reduce_kernel(const float* __restrict__ partial, int splits, int M, int N,
                              const __half* __restrict__ bias, __half* __restrict__ y) {
  const size_t idx = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (idx >= (size_t)M * N) return;
  float sum = bias ? __half2float(bias[idx % N]) : 0.0f;
  for (int s = 0; s < splits; ++s) sum += partial[(size_t)s * M * N + idx];
  y[idx] = __float2half(sum);
}

// ---- tensor-core GEMM ----
constexpr int kBM = 64, kBN = 64, kBK = 32;
constexpr int kLdA = kBK + 8;  // half elements; padding against bank conflicts, multiple of 8
constexpr int kLdB = kBN + 8;
constexpr int kLdC = kBN + 4;  // float elements, multiple of 4

__global__ void gemm_kernel(const int32_t* __restrict__ qweight, const int32_t* __restrict__ qzeros,
                            const __half* __restrict__ scales, const __half* __restrict__ x, int M,
                            int K, int N, int G, const __half* __restrict__ bias,
                            __half* __restrict__ y) {
  using namespace nvcuda;
  __shared__ __align__(32) __half sA[kBM * kLdA];  // x tile    [BM][BK]
  __shared__ __align__(32) __half sB[kBK * kLdB];  // W^T tile  [BK][BN]
  __shared__ __align__(32) float sC[kBM * kLdC];   // output tile
  const int m0 = blockIdx.y * kBM, n0 = blockIdx.x * kBN;
  const int tid = threadIdx.x, warp = tid / 32;
  const int wm = (warp / 2) * 32, wn = (warp % 2) * 32;  // this warp's 32x32 sub-tile
  const int nw = N / 8;
  wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc[2][2];
  for (int a = 0; a < 2; ++a)
    for (int b = 0; b < 2; ++b) wmma::fill_fragment(acc[a][b], 0.0f);

  for (int k0 = 0; k0 < K; k0 += kBK) {
    // x tile: 64 x 32 halves, 16 per thread; zero outside [M, K).
    for (int e = tid; e < kBM * kBK; e += blockDim.x) {
      const int r = e / kBK, c = e % kBK;
      const int m = m0 + r, k = k0 + c;
      sA[r * kLdA + c] = (m < M && k < K) ? x[(size_t)m * K + k] : __float2half(0.0f);
    }
    // W^T tile: 32 k x 8 packed words (64 columns), 2 words per thread, each -> 8 halves.
    for (int e = tid; e < kBK * (kBN / 8); e += blockDim.x) {
      const int r = e / (kBN / 8), jw = e % (kBN / 8);
      const int k = k0 + r, j = n0 / 8 + jw;
      if (k < K && j < nw) {
        const int g = k / G;
        const uint32_t qw = (uint32_t)qweight[(size_t)k * nw + j];
        const uint32_t zw = (uint32_t)qzeros[(size_t)g * nw + j];
        for (int i = 0; i < 8; ++i) {
          const int col = awq_column(i);
          const float s = __half2float(scales[(size_t)g * N + 8 * j + col]);
          const float q = (float)((qw >> (4 * i)) & 0xF), z = (float)((zw >> (4 * i)) & 0xF);
          sB[r * kLdB + 8 * jw + col] = __float2half((q - z) * s);
        }
      } else {
        for (int i = 0; i < 8; ++i) sB[r * kLdB + 8 * jw + i] = __float2half(0.0f);
      }
    }
    __syncthreads();
    for (int kk = 0; kk < kBK; kk += 16) {
      wmma::fragment<wmma::matrix_a, 16, 16, 16, __half, wmma::row_major> fa[2];
      wmma::fragment<wmma::matrix_b, 16, 16, 16, __half, wmma::row_major> fb[2];
      for (int a = 0; a < 2; ++a)
        wmma::load_matrix_sync(fa[a], sA + (wm + 16 * a) * kLdA + kk, kLdA);
      for (int b = 0; b < 2; ++b) wmma::load_matrix_sync(fb[b], sB + kk * kLdB + wn + 16 * b, kLdB);
      for (int a = 0; a < 2; ++a)
        for (int b = 0; b < 2; ++b) wmma::mma_sync(acc[a][b], fa[a], fb[b], acc[a][b]);
    }
    __syncthreads();
  }
  for (int a = 0; a < 2; ++a)
    for (int b = 0; b < 2; ++b)
      wmma::store_matrix_sync(sC + (wm + 16 * a) * kLdC + wn + 16 * b, acc[a][b], kLdC,
                              wmma::mem_row_major);
  __syncthreads();
  for (int e = tid; e < kBM * kBN; e += blockDim.x) {
    const int r = e / kBN, c = e % kBN;
    const int m = m0 + r, n = n0 + c;
    if (m < M && n < N) {
      const float b = bias ? __half2float(bias[n]) : 0.0f;
      y[(size_t)m * N + n] = __float2half(sC[r * kLdC + c] + b);
    }
  }
}

CudaStatus check_launch() {
  return cudaGetLastError() == cudaSuccess ? CudaStatus::Ok : CudaStatus::LaunchFailed;
}

int real_group(const W4Device& w) { return w.group_size == -1 ? w.K : w.group_size; }

}  // namespace

bool w4_shape_supported(const W4Device& w) {
  if (w.K <= 0 || w.N <= 0 || w.N % 8 != 0) return false;
  const int G = real_group(w);
  return G > 0 && w.K % G == 0 && (G == w.K || G % 8 == 0);
}

size_t w4_gemv_workspace_bytes(const W4Device& w, int M) {
  if (!w4_shape_supported(w)) return 0;
  return sizeof(float) * (size_t)gemv_splits(w) * (size_t)std::max(M, 0) * w.N;
}

CudaStatus w4a16_gemv(const W4Device& w, const uint16_t* x, int M, uint16_t* y,
                      const uint16_t* bias, float* workspace, size_t workspace_bytes,
                      cudaStream_t stream) {
  if (!w4_shape_supported(w) || M < 1 || M > kGemvMaxBatch || !x || !y || !w.qweight || !w.qzeros ||
      !w.scales || !workspace || workspace_bytes < w4_gemv_workspace_bytes(w, M))
    return CudaStatus::InvalidArgument;
  const int splits = gemv_splits(w);
  const int k_chunk = ((w.K + splits - 1) / splits + 7) / 8 * 8;
  const int used_splits = (w.K + k_chunk - 1) / k_chunk;
  const dim3 grid((w.N / 8 + kGemvCols - 1) / kGemvCols, used_splits), block(kGemvCols, kGemvRows);
  const auto* xs = reinterpret_cast<const __half*>(x);
  const auto* sc = reinterpret_cast<const __half*>(w.scales);
  const int G = real_group(w);
  switch (M) {
#define AWQ_GEMV_CASE(MM)                                                                          \
  case MM:                                                                                         \
    gemv_kernel<MM><<<grid, block, 0, stream>>>(w.qweight, w.qzeros, sc, xs, w.K, w.N, G, k_chunk, \
                                                workspace);                                        \
    break;
    AWQ_GEMV_CASE(1)
    AWQ_GEMV_CASE(2) AWQ_GEMV_CASE(3) AWQ_GEMV_CASE(4) AWQ_GEMV_CASE(5) AWQ_GEMV_CASE(6)
        AWQ_GEMV_CASE(7) AWQ_GEMV_CASE(8)
#undef AWQ_GEMV_CASE
  }
  if (check_launch() != CudaStatus::Ok) return CudaStatus::LaunchFailed;
  const size_t total = (size_t)M * w.N;
  reduce_kernel<<<(unsigned)((total + 255) / 256), 256, 0, stream>>>(
      workspace, used_splits, M, w.N, reinterpret_cast<const __half*>(bias),
      reinterpret_cast<__half*>(y));
  return check_launch();
}

CudaStatus w4a16_gemm(const W4Device& w, const uint16_t* x, int M, uint16_t* y,
                      const uint16_t* bias, cudaStream_t stream) {
  if (!w4_shape_supported(w) || M < 1 || !x || !y || !w.qweight || !w.qzeros || !w.scales)
    return CudaStatus::InvalidArgument;
  const dim3 grid((w.N + kBN - 1) / kBN, (M + kBM - 1) / kBM);
  gemm_kernel<<<grid, 128, 0, stream>>>(
      w.qweight, w.qzeros, reinterpret_cast<const __half*>(w.scales),
      reinterpret_cast<const __half*>(x), M, w.K, w.N, real_group(w),
      reinterpret_cast<const __half*>(bias), reinterpret_cast<__half*>(y));
  return check_launch();
}

}  // namespace awq::cuda
