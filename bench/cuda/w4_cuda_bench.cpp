// CUDA W4A16 vs cuBLAS fp16 (Google Benchmark; built only with -DAWQ_CUDA=ON -DAWQ_BENCH=ON).
//   cuda_w4/K/N/M   : w4a16_gemv for M <= 8, w4a16_gemm above
//   cublas_f16/K/N/M: cublasGemmEx fp16 in/out, fp32 compute, same shapes
// Counters: weight_GB/s (bytes of weights read per second), TFLOP/s. Timed with CUDA events.
#include <benchmark/benchmark.h>
#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "kernels/cuda/w4_cuda.h"

namespace {

using namespace awq::cuda;

template <class T>
T* upload_random(size_t n, uint32_t seed, bool halves) {
  std::mt19937 rng(seed);
  std::vector<T> h(n);
  for (auto& v : h) v = halves ? (T)(0x2000 + (rng() & 0x0fff)) : (T)rng();  // small fp16 values
  T* d = nullptr;
  cudaMalloc(reinterpret_cast<void**>(&d), n * sizeof(T));
  cudaMemcpy(d, h.data(), n * sizeof(T), cudaMemcpyHostToDevice);
  return d;
}

void report(benchmark::State& st, double weight_bytes, int M, int K, int N) {
  const double it = (double)st.iterations();
  st.counters["weight_GB/s"] =
      benchmark::Counter(weight_bytes * it / 1e9, benchmark::Counter::kIsRate);
  st.counters["TFLOP/s"] =
      benchmark::Counter(2.0 * M * K * N * it / 1e12, benchmark::Counter::kIsRate);
}

void bm_w4(benchmark::State& st, int K, int N, int M) {
  const int G = 128;
  auto* qw = upload_random<int32_t>((size_t)K * N / 8, 1, false);
  auto* qz = upload_random<int32_t>((size_t)K / G * N / 8, 2, false);
  auto* sc = upload_random<uint16_t>((size_t)K / G * N, 3, true);
  auto* x = upload_random<uint16_t>((size_t)M * K, 4, true);
  uint16_t* y = nullptr;
  cudaMalloc(reinterpret_cast<void**>(&y), (size_t)M * N * 2);
  const W4Device w{qw, qz, sc, K, N, G};
  const size_t ws = w4_gemv_workspace_bytes(w, std::min(M, kGemvMaxBatch));
  float* work = nullptr;
  cudaMalloc(reinterpret_cast<void**>(&work), ws + 4);
  cudaEvent_t e0, e1;
  cudaEventCreate(&e0);
  cudaEventCreate(&e1);
  for (auto _ : st) {
    cudaEventRecord(e0);
    const CudaStatus s = M <= kGemvMaxBatch ? w4a16_gemv(w, x, M, y, nullptr, work, ws, nullptr)
                                            : w4a16_gemm(w, x, M, y, nullptr, nullptr);
    cudaEventRecord(e1);
    cudaEventSynchronize(e1);
    if (s != CudaStatus::Ok) st.SkipWithError(status_string(s));
    float ms = 0;
    cudaEventElapsedTime(&ms, e0, e1);
    st.SetIterationTime(ms / 1e3);
  }
  report(st, (double)K * N / 2 + (double)K / G * N * 2.5, M, K, N);
  cudaFree(qw), cudaFree(qz), cudaFree(sc), cudaFree(x), cudaFree(y), cudaFree(work);
}

void bm_cublas(benchmark::State& st, int K, int N, int M) {
  auto* w = upload_random<uint16_t>((size_t)N * K, 5, true);
  auto* x = upload_random<uint16_t>((size_t)M * K, 6, true);
  uint16_t* y = nullptr;
  cudaMalloc(reinterpret_cast<void**>(&y), (size_t)M * N * 2);
  cublasHandle_t h;
  cublasCreate(&h);
  const float alpha = 1.0f, beta = 0.0f;
  cudaEvent_t e0, e1;
  cudaEventCreate(&e0);
  cudaEventCreate(&e1);
  for (auto _ : st) {
    cudaEventRecord(e0);
    // Column-major view: y^T[N x M] = W[N x K] (stored as K x N, so op T) * x^T[K x M].
    cublasGemmEx(h, CUBLAS_OP_T, CUBLAS_OP_N, N, M, K, &alpha, w, CUDA_R_16F, K, x, CUDA_R_16F, K,
                 &beta, y, CUDA_R_16F, N, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
    cudaEventRecord(e1);
    cudaEventSynchronize(e1);
    float ms = 0;
    cudaEventElapsedTime(&ms, e0, e1);
    st.SetIterationTime(ms / 1e3);
  }
  report(st, 2.0 * N * K, M, K, N);
  cublasDestroy(h);
  cudaFree(w), cudaFree(x), cudaFree(y);
}

}  // namespace

int main(int argc, char** argv) {
  if (!cuda_available()) {
    std::printf("no CUDA device; nothing to benchmark\n");
    return 0;
  }
  const int shapes[][2] = {{4096, 4096}, {4096, 11008}, {11008, 4096}};
  for (const auto& s : shapes)
    for (int M : {1, 4, 16, 64, 256}) {
      const std::string tag =
          std::to_string(s[0]) + "/" + std::to_string(s[1]) + "/" + std::to_string(M);
      benchmark::RegisterBenchmark(("cuda_w4/" + tag).c_str(), bm_w4, s[0], s[1], M)
          ->UseManualTime()
          ->Unit(benchmark::kMicrosecond);
      benchmark::RegisterBenchmark(("cublas_f16/" + tag).c_str(), bm_cublas, s[0], s[1], M)
          ->UseManualTime()
          ->Unit(benchmark::kMicrosecond);
    }
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
