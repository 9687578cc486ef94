// W4 matmul microbenchmarks (Google Benchmark), per ISA, against fp32 cblas_sgemm.
//   w4/<isa>/K/N/M      : y[M][N] = x[M][K] W^T with a 4-bit W (group 128, 64 when K % 128),
//                         decode path with exact fp32 activations (W4Decode::F32)
//   w4i8/<isa>/K/N/M    : same with int8 activations on the decode path (W4Decode::I8; M above
//                         the decode/prefill split runs the same fp32 prefill as w4/)
//   w4cold[i8]/<isa>/K/N/M : same, cycling through enough copies of W to exceed the L3 cache, so
//                         the weights really come from DRAM (the decode situation for a model)
//   sgemm/K/N/M         : fp32 weights, cblas_sgemm via sgemm_nt
// AWQ_DECODE_MAX_M=<m> moves the decode / prefill split (benchmark only).
//   membw/threads       : streaming-read bandwidth of a 512 MiB buffer (the ceiling for M = 1)
// Counters: weight_GB/s = bytes of weights streamed per second (packed codes + group headers
// for w4, N*K*4 for sgemm); GFLOP/s = 2*M*N*K per second.
// Run: ./build-kern/w4_bench [--benchmark_filter=...]   (threads: OMP_NUM_THREADS, default all)
#include <benchmark/benchmark.h>
#include <omp.h>

#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "core/half.h"
#include "kernels/gemm.h"
#include "kernels/membw.h"
#include "kernels/w4.h"

namespace {

using awq::Isa;

awq::W4Matrix random_w4(int K, int N, int G, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> code(0, 15);
  std::vector<uint8_t> q((size_t)N * K), z((size_t)N * (K / G));
  std::vector<float> s(z.size());
  for (auto& v : q) v = (uint8_t)code(rng);
  for (auto& v : z) v = (uint8_t)code(rng);
  for (auto& v : s) v = 0.01f + 0.001f * code(rng);
  return std::move(awq::w4_from_codes(q.data(), z.data(), s.data(), K, N, G)).value();
}

std::vector<float> random_vec(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  std::vector<float> v(n);
  for (auto& e : v) e = u(rng);
  return v;
}

void set_counters(benchmark::State& st, double weight_bytes, int M, int K, int N) {
  const double it = (double)st.iterations();
  st.counters["weight_GB/s"] =
      benchmark::Counter(weight_bytes * it / 1e9, benchmark::Counter::kIsRate);
  st.counters["GFLOP/s"] =
      benchmark::Counter(2.0 * M * K * N * it / 1e9, benchmark::Counter::kIsRate);
}

void bm_w4(benchmark::State& st, Isa isa, awq::W4Decode mode, int K, int N, int M, int copies) {
  std::vector<awq::W4Matrix> ws;
  const int G = K % 128 == 0 ? 128 : 64;  // SmolLM2's K = 576 is not a multiple of 128
  for (int c = 0; c < copies; ++c) ws.push_back(random_w4(K, N, G, 1 + c));
  const std::vector<float> x = random_vec((size_t)M * K, 7);
  std::vector<float> y((size_t)M * N);
  size_t i = 0;
  for (auto _ : st) {
    awq::w4_matmul_isa(isa, mode, ws[i], x.data(), M, y.data());
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
    if (++i == ws.size()) i = 0;
  }
  set_counters(st, (double)ws[0].packed_bytes(), M, K, N);
}

void bm_sgemm(benchmark::State& st, int K, int N, int M) {
  const std::vector<float> w = random_vec((size_t)N * K, 3), x = random_vec((size_t)M * K, 4);
  std::vector<float> y((size_t)M * N);
  for (auto _ : st) {
    awq::sgemm_nt(M, N, K, x.data(), w.data(), y.data());
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  set_counters(st, 4.0 * N * K, M, K, N);
}

void bm_membw(benchmark::State& st, int threads) {
  double gbs = 0;
  for (auto _ : st) gbs = awq::measure_memory_bandwidth_gbs(size_t(512) << 20, threads);
  st.counters["GB/s"] = gbs;
}

struct Shape {
  int K, N;
};
// SmolLM2-135M projections (hidden 576, intermediate 1536, kv 192) and a 7B-class square.
const Shape kShapes[] = {{576, 576}, {576, 1536}, {1536, 576}, {576, 192}, {4096, 4096}};
const int kBatches[] = {1, 4, 8, 16, 32, 64, 512};

}  // namespace

int main(int argc, char** argv) {
  // AWQ_DECODE_MAX_M=<m>: move the decode-kernel / dequant+sgemm split (to find the crossover).
  if (const char* e = std::getenv("AWQ_DECODE_MAX_M")) awq::w4_set_decode_max_m(std::atoi(e));
  const int threads = omp_get_max_threads();
  for (int t : {1, threads})
    benchmark::RegisterBenchmark(("membw/threads:" + std::to_string(t)).c_str(), bm_membw, t)
        ->Iterations(1)
        ->Unit(benchmark::kMillisecond);
  for (const Shape& s : kShapes) {
    for (int M : kBatches) {
      const std::string shape =
          std::to_string(s.K) + "/" + std::to_string(s.N) + "/" + std::to_string(M);
      for (Isa isa : awq::w4_available_isas()) {
        if (isa == Isa::Scalar && (M > 16 || s.K * s.N > 1 << 20)) continue;  // too slow to matter
        for (awq::W4Decode mode : {awq::W4Decode::F32, awq::W4Decode::I8}) {
          // prefill (identical to w4/) unless AWQ_DECODE_MAX_M moves the split, as awq serve does
          if (mode == awq::W4Decode::I8 && M > 32 && !std::getenv("AWQ_DECODE_MAX_M")) continue;
          const std::string name =
              (mode == awq::W4Decode::I8 ? "w4i8/" : "w4/") + std::string(awq::isa_name(isa));
          benchmark::RegisterBenchmark((name + "/" + shape).c_str(), bm_w4, isa, mode, s.K, s.N, M,
                                       1)
              ->UseRealTime()
              ->Unit(benchmark::kMicrosecond);
        }
      }
      benchmark::RegisterBenchmark(("sgemm/" + shape).c_str(), bm_sgemm, s.K, s.N, M)
          ->UseRealTime()
          ->Unit(benchmark::kMicrosecond);
    }
  }
  // DRAM-resident weights: 8 copies of a 4096x4096 W4 (~9 MiB each) > 32 MiB L3.
  for (int M : {1, 4, 16})
    for (Isa isa : awq::w4_available_isas()) {
      if (isa == Isa::Scalar) continue;
      for (awq::W4Decode mode : {awq::W4Decode::F32, awq::W4Decode::I8}) {
        const std::string name = (mode == awq::W4Decode::I8 ? "w4coldi8/" : "w4cold/") +
                                 std::string(awq::isa_name(isa)) + "/4096/4096/" +
                                 std::to_string(M);
        benchmark::RegisterBenchmark(name.c_str(), bm_w4, isa, mode, 4096, 4096, M, 8)
            ->UseRealTime()
            ->Unit(benchmark::kMicrosecond);
      }
    }
  std::printf("active ISA: %s, decode: %s, OpenMP threads: %d\n",
              awq::isa_name(awq::w4_active_isa()), awq::decode_name(awq::w4_decode_mode()),
              threads);
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
