// fp32 prefill of the forward pass vs the machine's fp32 GEMM peak (same BLAS: OpenBLAS).
//   AWQ_SMOLLM2_DIR=models/smollm2-fp32 build/forward_bench
// BM_SgemmPeak: C[M,N] = A[M,K]·B[N,K]^T at the shapes of SmolLM2's linears and a square one.
// BM_Prefill:   forward_hidden over T tokens (no lm_head); counters report tokens/s and the
//               achieved FLOP/s of the linear layers counted as if they took all the time
//               (a lower bound of their real efficiency).
#include <benchmark/benchmark.h>
#include <cblas.h>

#include <cstdlib>
#include <random>

#include "core/threads.h"
#include "model/forward.h"

using namespace awq;

static void BM_SgemmPeak(benchmark::State& st) {
  const int M = (int)st.range(0), N = (int)st.range(1), K = (int)st.range(2);
  std::vector<float> a((size_t)M * K), b((size_t)N * K), c((size_t)M * N);
  std::mt19937 g(1);
  std::uniform_real_distribution<float> u(-1, 1);
  for (auto& v : a) v = u(g);
  for (auto& v : b) v = u(g);
  for (auto _ : st)
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, 1.0f, a.data(), K, b.data(), K,
                0.0f, c.data(), N);
  st.counters["GFLOP/s"] = benchmark::Counter(2.0 * M * N * K * st.iterations() / 1e9,
                                              benchmark::Counter::kIsRate);
}
BENCHMARK(BM_SgemmPeak)
    ->Args({512, 1536, 576})
    ->Args({512, 576, 1536})
    ->Args({512, 576, 576})
    ->Args({2048, 2048, 2048})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

static const Model* smollm2() {
  static Model* m = [] () -> Model* {
    const char* dir = std::getenv("AWQ_SMOLLM2_DIR");
    if (!dir) return nullptr;
    auto r = load_model(dir);
    return r.ok() ? new Model(std::move(*r)) : nullptr;
  }();
  return m;
}

static void BM_Prefill(benchmark::State& st) {
  const Model* m = smollm2();
  if (!m) {
    st.SkipWithError("set AWQ_SMOLLM2_DIR to an fp32 SmolLM2 directory");
    return;
  }
  const int T = (int)st.range(0);
  std::vector<int32_t> toks(T);
  for (int i = 0; i < T; ++i) toks[i] = 100 + (i * 37) % 40000;
  std::vector<float> h((size_t)T * m->cfg.hidden);
  for (auto _ : st) forward_hidden(*m, toks.data(), 1, T, h.data());
  double linear_params = 0;
  for (const auto& b : m->blocks)
    for (const Linear* l : {&b.q, &b.k, &b.v, &b.o, &b.gate, &b.up, &b.down})
      linear_params += (double)l->in * l->out;
  st.counters["tokens/s"] = benchmark::Counter((double)T * st.iterations(), benchmark::Counter::kIsRate);
  st.counters["linear_GFLOP/s"] = benchmark::Counter(2.0 * linear_params * T * st.iterations() / 1e9,
                                                     benchmark::Counter::kIsRate);
}
BENCHMARK(BM_Prefill)->Arg(512)->Arg(2048)->Unit(benchmark::kMillisecond)->UseRealTime();

BENCHMARK_MAIN();
