// fake_quantize (the scale/clip search calls it ~20x per layer) and quantize/pack throughput.
// Shapes of SmolLM-135M's MLP: gate/up [1536 out, 576 in] (576 = 9 * 64, so G = 64) and
// down [576 out, 1536 in] (G = 128).
#include <benchmark/benchmark.h>

#include <random>
#include <vector>

#include "quant/awq_pack.h"
#include "quant/group_quant.h"

namespace {

std::vector<float> matrix(int64_t n) {
  std::mt19937 rng(1);
  std::normal_distribution<float> nd(0.0f, 0.02f);
  std::vector<float> v(static_cast<size_t>(n));
  for (auto& x : v) x = nd(rng);
  return v;
}

// args: N, K, group_size, w_bit
void BM_FakeQuantize(benchmark::State& state) {
  const int64_t N = state.range(0), K = state.range(1);
  awq::QuantConfig cfg;
  cfg.group_size = int(state.range(2));
  cfg.w_bit = int(state.range(3));
  const auto src = matrix(N * K);
  auto w = src;
  for (auto _ : state) {
    state.PauseTiming();
    w = src;
    state.ResumeTiming();
    awq::fake_quantize(w.data(), N, K, cfg);
    benchmark::DoNotOptimize(w.data());
  }
  state.SetItemsProcessed(state.iterations() * N * K);
  state.SetBytesProcessed(state.iterations() * N * K * 8);  // read + write fp32
}
BENCHMARK(BM_FakeQuantize)
    ->Args({1536, 576, 64, 4})
    ->Args({576, 1536, 128, 4})
    ->Args({1536, 576, 64, 3})
    ->Args({1536, 576, 64, 8})
    ->Args({1536, 576, -1, 4})
    ->Unit(benchmark::kMicrosecond)
    ->UseRealTime();

void BM_QuantizeAndPack(benchmark::State& state) {
  const int N = int(state.range(0)), K = int(state.range(1));
  awq::QuantConfig cfg;
  cfg.group_size = int(state.range(2));
  const auto w = matrix(int64_t(N) * K);
  for (auto _ : state) {
    auto ql = awq::quantize_linear(w.data(), N, K, cfg);
    auto t = awq::pack_awq_gemm(*ql);
    benchmark::DoNotOptimize(t->qweight.data());
  }
  state.SetItemsProcessed(state.iterations() * int64_t(N) * K);
}
BENCHMARK(BM_QuantizeAndPack)->Args({1536, 576, 64})->Unit(benchmark::kMicrosecond)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
