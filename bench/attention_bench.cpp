// Decode attention over the engine's paged fp16 KV cache (runtime/attention.h), SmolLM2-135M
// shapes: 30 layers x 3 kv heads x 64 dims, 3 query heads per kv head, 16-token pages laid out
// as the engine lays them out ([block][layer][kv head]) with the block ids of sequences that
// grew together (interleaved). One iteration = one decode step's attention for every sequence:
// 1 query row per (sequence, layer, kv head), split across threads like Engine::forward.
//   attn/seqs/depth/threads   counters: keys/s, KV_GB/s (K and V bytes read per second)
// The cache (32 sequences x 216 tokens: ~160 MB) is larger than the L3 cache, as in serving.
// Run: ./build/attention_bench [--benchmark_filter=...]
#include <benchmark/benchmark.h>
#include <omp.h>

#include <random>
#include <vector>

#include "core/half.h"
#include "core/huge_buffer.h"
#include "runtime/attention.h"

namespace {

constexpr int kLayers = 30, kKvHeads = 3, kHd = 64, kGroup = 3;

void bm_attention(benchmark::State& st) {
  const int seqs = (int)st.range(0), depth = (int)st.range(1), threads = (int)st.range(2);
  const int blocks_per_seq = (depth + awq::kBlockTokens - 1) / awq::kBlockTokens;
  const int n_blocks = blocks_per_seq * seqs;
  const size_t page = (size_t)awq::kBlockTokens * kHd;
  const size_t block_stride = (size_t)kLayers * kKvHeads * page;
  // on transparent huge pages, as the engine allocates its pool
  awq::HugeBuffer<uint16_t> K, V;
  K.assign_zero((size_t)n_blocks * block_stride);
  V.assign_zero(K.size());
  std::mt19937 rng(1);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  for (size_t i = 0; i < K.size(); ++i) {
    K.data()[i] = awq::f32_to_fp16(u(rng));
    V.data()[i] = awq::f32_to_fp16(u(rng));
  }
  std::vector<std::vector<int>> tables(seqs);
  for (int s = 0; s < seqs; ++s)
    for (int b = 0; b < blocks_per_seq; ++b) tables[s].push_back(b * seqs + s);
  const int qd = kKvHeads * kGroup * kHd;
  std::vector<float> q((size_t)seqs * qd), out(q.size());
  for (float& v : q) v = u(rng);
  awq::ModelConfig cfg;
  cfg.n_heads = kKvHeads * kGroup;
  cfg.n_kv_heads = kKvHeads;
  cfg.head_dim = kHd;
  const float scale = 0.125f;
  const int n_tasks = seqs * kKvHeads;
  for (auto _ : st) {
    for (int l = 0; l < kLayers; ++l) {
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads)
      for (int ti = 0; ti < n_tasks; ++ti) {
        thread_local std::vector<float> scores;
        const int s = ti / kKvHeads, h = ti % kKvHeads;
        const size_t base = ((size_t)l * kKvHeads + h) * page;
        const awq::KvRowsT<uint16_t> kv{K.data() + base, V.data() + base, tables[s].data(),
                                        block_stride, kHd};
        const size_t h0 = (size_t)s * qd + (size_t)h * kGroup * kHd;
        awq::cached_attention_group(cfg, 0, q.data() + h0, qd, kGroup, 1, depth - 1, kv, scale,
                                    out.data() + h0, scores, false);
      }
    }
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  const double keys = (double)seqs * depth * kLayers * kKvHeads;
  st.counters["keys/s"] = benchmark::Counter(keys * st.iterations(), benchmark::Counter::kIsRate);
  st.counters["KV_GB/s"] = benchmark::Counter(keys * 2 * kHd * sizeof(uint16_t) * st.iterations() / 1e9,
                                              benchmark::Counter::kIsRate);
}

}  // namespace

BENCHMARK(bm_attention)
    ->Name("attn")
    ->ArgNames({"seqs", "depth", "threads"})
    ->Args({2, 216, 1})
    ->Args({32, 216, 1})
    ->Args({32, 216, 2})
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

BENCHMARK_MAIN();
