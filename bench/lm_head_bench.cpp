// Decode lm_head microbenchmarks (Google Benchmark): SmolLM2-135M's shape, vocab 49152 x hidden
// 576, for M = 1, 4, 16 rows of x.
//   lmhead/f16/M : f16_matmul (fp16 weights, fp32 activations; today's decode head)
//   lmhead/q8/M  : q8_matmul (int8 weights in blocks of 32 + fp16 scales, int8 activations)
//   lmhead/q8/<isa>/M : the same through one build (avx2, avx512; those the host has), so the
//                  builds run back to back whatever AWQ_ISA says
// Both cycle through enough copies of the weight to exceed a 32 MiB L3 (f16: 2 x 56.6 MB,
// q8: 3 x 30.1 MB), so every call streams from DRAM as in real decoding. The build follows
// AWQ_ISA (scalar: the portable builds). Counters: weight_GB/s = weight bytes streamed per second.
// Run: OMP_WAIT_POLICY=passive ./build/lm_head_bench [--benchmark_filter=lmhead/q8/1$]
#include <benchmark/benchmark.h>

#include <cstdio>

#include <random>
#include <string>
#include <vector>

#include "core/half.h"
#include "kernels/f16_matmul.h"
#include "kernels/q8_matmul.h"

namespace {

constexpr int kVocab = 49152, kHidden = 576;

std::vector<float> random_vec(size_t n, uint32_t seed, float sd) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.0f, sd);
  std::vector<float> v(n);
  for (auto& e : v) e = nd(rng);
  return v;
}

void counters(benchmark::State& st, double bytes) {
  st.counters["weight_GB/s"] =
      benchmark::Counter(bytes * (double)st.iterations() / 1e9, benchmark::Counter::kIsRate);
}

void bm_f16(benchmark::State& st, int M) {
  std::vector<std::vector<uint16_t>> ws;
  for (int c = 0; c < 2; ++c) {
    const auto w = random_vec((size_t)kVocab * kHidden, 1 + c, 0.05f);
    std::vector<uint16_t> h(w.size());
    for (size_t i = 0; i < w.size(); ++i) h[i] = awq::f32_to_fp16(w[i]);
    ws.push_back(std::move(h));
  }
  const auto x = random_vec((size_t)M * kHidden, 7, 1.0f);
  std::vector<float> y((size_t)M * kVocab);
  size_t i = 0;
  for (auto _ : st) {
    awq::f16_matmul(ws[i].data(), kVocab, kHidden, x.data(), M, y.data());
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
    if (++i == ws.size()) i = 0;
  }
  counters(st, (double)kVocab * kHidden * 2);
}

// fn = nullptr: the dispatched q8_matmul.
void bm_q8(benchmark::State& st, int M, awq::detail::Q8RowsFn fn) {
  std::vector<awq::Q8Matrix> ws;
  for (int c = 0; c < 3; ++c) {
    const auto w = random_vec((size_t)kVocab * kHidden, 1 + c, 0.05f);
    ws.push_back(std::move(awq::q8_from_f32(w.data(), kVocab, kHidden)).value());
  }
  const auto x = random_vec((size_t)M * kHidden, 7, 1.0f);
  std::vector<float> y((size_t)M * kVocab);
  size_t i = 0;
  for (auto _ : st) {
    if (fn)
      awq::detail::q8_matmul_with(fn, ws[i], x.data(), M, y.data());
    else
      awq::q8_matmul(ws[i], x.data(), M, y.data());
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
    if (++i == ws.size()) i = 0;
  }
  counters(st, (double)ws[0].bytes());
}

}  // namespace

int main(int argc, char** argv) {
  for (int M : {1, 4, 16}) {
    benchmark::RegisterBenchmark(("lmhead/f16/" + std::to_string(M)).c_str(), bm_f16, M)
        ->Unit(benchmark::kMicrosecond);
    benchmark::RegisterBenchmark(("lmhead/q8/" + std::to_string(M)).c_str(), bm_q8, M,
                                 nullptr)
        ->Unit(benchmark::kMicrosecond);
    for (awq::Isa isa : awq::w4_available_isas()) {
      if (isa == awq::Isa::Scalar) continue;
      benchmark::RegisterBenchmark(
          ("lmhead/q8/" + std::string(awq::isa_name(isa)) + "/" + std::to_string(M)).c_str(),
          bm_q8, M, awq::detail::q8_rows_for(isa))
          ->Unit(benchmark::kMicrosecond);
    }
  }
  std::printf("active ISA: %s\n", awq::isa_name(awq::w4_active_isa()));
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
