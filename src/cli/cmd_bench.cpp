// awq bench [MODEL]: llama-bench style throughput. pp<P>: prefill of P tokens (tokens/s);
// tg<N>: N decode steps after a short prompt, b sequences together (aggregate tokens/s);
// --membw: streaming-read bandwidth, and the fraction of it that decode reaches.
#include <chrono>
#include <climits>
#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "cli/command.h"
#include "cli/gen_common.h"
#include "core/threads.h"
#include "kernels/membw.h"
#include "kernels/w4.h"

namespace awq::cli {
namespace {

struct BenchArgs {
  std::string model;
  std::vector<int> pp = {512}, tg = {128}, threads = {0}, batch = {1};
  int reps = 3, membw_mib = 512, depth = 8;
  bool json = false, membw = false, no_w4 = false, batch_invariant = false;
  std::string kv_dtype = "f32";
};

std::vector<int32_t> bench_tokens(int n, int vocab, uint32_t seed) {
  std::vector<int32_t> t(n);
  uint64_t x = 0x9E3779B97F4A7C15ull ^ seed;
  for (auto& v : t) {
    x = x * 6364136223846793005ull + 1442695040888963407ull;
    v = (int32_t)((x >> 33) % (uint64_t)vocab);
  }
  return t;
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

Expected<double> run_pp(const Model& m, int n_tokens, const BenchArgs& a) {
  AWQ_ASSIGN(Engine eng, Engine::create(m, {.max_ctx = n_tokens, .n_slots = 1,
                                            .batch_invariant = a.batch_invariant,
                                            .kv_f16 = a.kv_dtype == "f16"}));
  const auto toks = bench_tokens(n_tokens, m.cfg.vocab, 1);
  std::vector<float> lg;
  const auto t0 = std::chrono::steady_clock::now();
  AWQ_TRY(eng.prefill(0, toks, lg));
  return n_tokens / seconds_since(t0);
}

// tg: each of the batch's sequences first prefills a.depth tokens (not timed), then decodes.
Expected<double> run_tg(const Model& m, int n_steps, int batch, const BenchArgs& a) {
  AWQ_ASSIGN(Engine eng, Engine::create(m, {.max_ctx = a.depth + n_steps, .n_slots = batch,
                                            .batch_invariant = a.batch_invariant,
                                            .kv_f16 = a.kv_dtype == "f16"}));
  std::vector<std::vector<int32_t>> prompts;
  std::vector<SeqChunk> chunks;
  for (int b = 0; b < batch; ++b) prompts.push_back(bench_tokens(a.depth, m.cfg.vocab, 100 + b));
  for (int b = 0; b < batch; ++b) chunks.push_back({b, prompts[b]});
  std::vector<float> lg;
  AWQ_TRY(eng.forward(chunks, lg));  // not timed
  std::vector<int> slots(batch);
  std::vector<int32_t> next(batch);
  for (int b = 0; b < batch; ++b) slots[b] = b;
  const int V = m.cfg.vocab;
  const auto t0 = std::chrono::steady_clock::now();
  for (int s = 0; s < n_steps; ++s) {
    for (int b = 0; b < batch; ++b) {
      const float* row = lg.data() + (size_t)b * V;
      next[b] = (int32_t)(std::max_element(row, row + V) - row);
    }
    AWQ_TRY(eng.decode(slots, next, lg));
  }
  return (double)batch * n_steps / seconds_since(t0);
}

int run_bench(const BenchArgs& a) {
  if (a.model.empty() && !a.membw) return fail("bench: give a MODEL directory and/or --membw");
  if (a.reps < 1) return fail("-r must be >= 1");
  for (int v : a.pp) if (v < 1) return fail("-p values must be >= 1");
  for (int v : a.tg) if (v < 1) return fail("-n values must be >= 1");
  for (int v : a.batch) if (v < 1 || v > 256) return fail("-b values must be in [1, 256]");
  if (a.depth < 1) return fail("-d/--depth must be >= 1");
  for (int v : a.threads) if (v < 0) return fail("-t values must be >= 0 (0 = all)");
  if (a.membw_mib < 16) return fail("--membw-mib must be >= 16");

  std::optional<double> gbs;
  int membw_threads = 0;
  if (a.membw) {
    membw_threads = *std::max_element(a.threads.begin(), a.threads.end());
    set_num_threads(membw_threads);
    membw_threads = num_threads();
    gbs = measure_memory_bandwidth_gbs((size_t)a.membw_mib << 20, membw_threads);
    if (a.model.empty()) {
      if (a.json)
        std::printf("%s\n", nlohmann::json({{"gb_per_s", *gbs}, {"threads", membw_threads},
                                            {"bytes", (size_t)a.membw_mib << 20}}).dump().c_str());
      else
        std::printf("memory bandwidth: %.2f GB/s (%d threads, %d MiB streaming read)\n", *gbs,
                    membw_threads, a.membw_mib);
      return 0;
    }
  }
  auto model = load_for_inference(a.model, a.no_w4);
  if (!model) return fail(model.error());
  const Model& m = *model;
  if (a.batch_invariant) w4_set_decode_max_m(INT_MAX);  // as `awq serve` runs by default
  const char* weights = weights_kind(m);
  // W4: "<isa>/<decode activations>", e.g. avx2/i8 (AWQ_ISA, AWQ_DECODE).
  const std::string isa_str = std::string(isa_name(w4_active_isa())) + "/" +
                              decode_name(w4_decode_mode());
  const char* isa = std::string(weights) == "w4" ? isa_str.c_str() : "openblas";
  const size_t bpt = weight_bytes_per_token(m);
  // Decode lm_head format (AWQ_LM_HEAD): q8 (int8 + fp16 scales), f16 (as stored), or f32.
  const char* lm_head = !m.lm_head_q8.empty() ? "q8" : !m.lm_head_f16.empty() ? "f16" : "f32";

  nlohmann::json runs = nlohmann::json::array();
  auto record = [&](const std::string& test, int batch, int threads, std::vector<double> v) {
    double mean = 0, sd = 0;
    for (double x : v) mean += x;
    mean /= v.size();
    for (double x : v) sd += (x - mean) * (x - mean);
    sd = v.size() > 1 ? std::sqrt(sd / (v.size() - 1)) : 0.0;
    nlohmann::json j = {{"model", a.model},       {"weights", weights},  {"isa", isa},
                        {"test", test},           {"batch", batch},      {"threads", threads},
                        {"reps", v.size()},       {"tokens_per_s", mean}, {"tokens_per_s_sd", sd},
                        {"samples", v},           {"bytes_per_token", bpt},
                        {"lm_head", lm_head},     {"kv_dtype", a.kv_dtype}};
    if (test.rfind("tg", 0) == 0) j["depth"] = a.depth;
    if (gbs && test.rfind("tg", 0) == 0) {
      const double achieved = mean / batch * (double)bpt / 1e9;  // weight GB/s streamed
      j["membw_gb_per_s"] = *gbs;
      j["weight_gb_per_s"] = achieved;
      j["bw_fraction"] = achieved / *gbs;
    }
    runs.push_back(j);
    if (!a.json)
      std::fprintf(stderr, "  %s b=%d t=%d: %.2f ± %.2f tok/s\n", test.c_str(), batch, threads, mean, sd);
  };

  for (int t : a.threads) {
    set_num_threads(t);
    const int nt = num_threads();
    {  // warm-up: page in the weights, start the thread pools
      auto w = run_pp(m, 16, a);
      if (!w) return fail(w.error());
    }
    for (int p : a.pp) {
      std::vector<double> v;
      for (int r = 0; r < a.reps; ++r) {
        auto x = run_pp(m, p, a);
        if (!x) return fail(x.error());
        v.push_back(*x);
      }
      record("pp" + std::to_string(p), 1, nt, v);
    }
    for (int n : a.tg)
      for (int b : a.batch) {
        std::vector<double> v;
        for (int r = 0; r < a.reps; ++r) {
          auto x = run_tg(m, n, b, a);
          if (!x) return fail(x.error());
          v.push_back(*x);
        }
        record("tg" + std::to_string(n) + (a.depth != BenchArgs{}.depth ? "@d" + std::to_string(a.depth) : ""), b, nt, v);
      }
  }
  if (a.json) {
    std::printf("%s\n", runs.dump(1).c_str());
    return 0;
  }
  std::printf(
      "| model | weights | isa | lm_head | threads | test | batch | t/s | weight MB/token |%s\n",
      gbs ? " bw fraction |" : "");
  std::printf("|---|---|---|---|---:|---|---:|---:|---:|%s\n", gbs ? "---:|" : "");
  for (const auto& j : runs) {
    std::printf("| %s | %s | %s | %s | %d | %s | %d | %.2f ± %.2f | %.1f |", a.model.c_str(),
                weights, isa, lm_head, j["threads"].get<int>(), j["test"].get<std::string>().c_str(),
                j["batch"].get<int>(), j["tokens_per_s"].get<double>(),
                j["tokens_per_s_sd"].get<double>(), bpt / 1e6);
    if (gbs) {
      if (j.contains("bw_fraction")) std::printf(" %.2f |", j["bw_fraction"].get<double>());
      else std::printf(" |");
    }
    std::printf("\n");
  }
  if (gbs) std::printf("\nmemory bandwidth: %.2f GB/s (%d threads)\n", *gbs, membw_threads);
  return 0;
}

Register reg("bench", "throughput: prompt processing (pp), generation (tg), memory bandwidth",
             [](CLI::App& sub) {
  auto a = std::make_shared<BenchArgs>();
  sub.add_option("model", a->model, "model directory (HF or AWQ); optional with --membw");
  sub.add_option("-p,--n-prompt", a->pp, "prompt lengths for pp tests")->delimiter(',')->capture_default_str();
  sub.add_option("-n,--n-gen", a->tg, "decode steps for tg tests")->delimiter(',')->capture_default_str();
  sub.add_option("-t,--threads", a->threads, "thread counts (0 = all)")->delimiter(',')->capture_default_str();
  sub.add_option("-b,--batch", a->batch, "sequences decoding together (tg)")->delimiter(',')->capture_default_str();
  sub.add_option("-r,--repetitions", a->reps, "repetitions per test")->capture_default_str();
  sub.add_flag("--membw", a->membw, "measure memory bandwidth (and bw_fraction of tg tests)");
  sub.add_option("--membw-mib", a->membw_mib, "buffer for --membw in MiB")->capture_default_str();
  sub.add_option("-d,--depth", a->depth, "tg: tokens already in each sequence's context before decoding")
      ->capture_default_str();
  sub.add_option("--kv-dtype", a->kv_dtype, "KV cache storage, as `awq serve --kv-dtype`")
      ->check(CLI::IsMember({"f32", "f16"}))->capture_default_str();
  sub.add_flag("--json", a->json, "print a JSON array, one object per test");
  sub.add_flag("--batch-invariant", a->batch_invariant,
               "run as `awq serve` does by default (decode kernels for any rows, lm_head in groups of 16)");
  sub.add_flag("--no-w4", a->no_w4, "AWQ checkpoints: dequantize to fp32 instead of W4 kernels");
  return [a]() { return run_bench(*a); };
});

}  // namespace
}  // namespace awq::cli
