// awq serve MODEL: OpenAI-compatible HTTP server with continuous batching (src/server/).
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <pthread.h>
#include <thread>

#include "cli/command.h"
#include "cli/gen_common.h"
#include "core/threads.h"
#include "kernels/w4.h"

#include <climits>
#include "runtime/scheduler.h"
#include "server/server.h"

namespace awq::cli {
namespace {

struct ServeArgs {
  std::string model, host = "127.0.0.1", api_key, served_name;
  int port = 8080, parallel = 32, ctx = 4096, threads = 0, max_queue = 256, prefill_budget = 256;
  int http_threads = 0;
  double kv_cache_mb = 1024, max_body_mb = 4, drain_seconds = 5;
  bool no_w4 = false, no_prefix_cache = false, no_batch_invariant = false;
  std::string kv_dtype = "f16";
};

int run_serve(const ServeArgs& a) {
  // SIGINT/SIGTERM go to one watcher thread: block them before any thread (OpenMP included)
  // exists, so every thread inherits the mask.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  std::signal(SIGPIPE, SIG_IGN);
  set_num_threads(a.threads);
  if (a.parallel < 1 || a.parallel > 1024) return fail("--parallel must be in [1, 1024]");
  if (a.ctx < 2) return fail("--ctx must be >= 2");
  if (a.port < 0 || a.port > 65535) return fail("--port must be in [0, 65535]");
  if (a.max_queue < 1) return fail("--max-queue must be >= 1");
  if (a.prefill_budget < 1) return fail("--prefill-budget must be >= 1");
  if (!(a.kv_cache_mb > 0)) return fail("--kv-cache-mb must be > 0");
  if (!(a.max_body_mb > 0)) return fail("--max-body-mb must be > 0");
  std::string key = a.api_key;
  if (key.empty())
    if (const char* e = std::getenv("AWQ_API_KEY")) key = e;

  auto tok = Tokenizer::load(a.model);
  if (!tok) return fail(tok.error());
  std::optional<ChatTemplate> tmpl;
  if (!tok->chat_template().empty()) {
    auto t = ChatTemplate::parse(tok->chat_template());
    if (!t) return fail(t.error());
    tmpl = std::move(*t);
  }
  auto defaults = load_generation_defaults(a.model);
  if (!defaults) return fail(defaults.error());
  auto model = load_for_inference(a.model, a.no_w4);
  if (!model) return fail(model.error());
  const bool kv_f16 = a.kv_dtype == "f16";
  const size_t block_bytes = kv_block_bytes(model->cfg, kv_f16);
  const int64_t kv_blocks = (int64_t)(a.kv_cache_mb * 1024 * 1024 / (double)block_bytes);
  if (kv_blocks < KvPool::blocks_for(a.ctx))
    return fail("--kv-cache-mb " + std::to_string(a.kv_cache_mb) + " holds " + std::to_string(kv_blocks) +
                " blocks of 16 tokens (" + std::to_string(block_bytes) +
                " bytes each), fewer than one sequence of --ctx " + std::to_string(a.ctx) +
                " needs; raise --kv-cache-mb or lower --ctx");
  // Batch invariance: a sequence's tokens do not depend on what else runs in the step (W4
  // linears on the row-wise decode kernel for any number of rows, per-row attention).
  if (!a.no_batch_invariant) w4_set_decode_max_m(INT_MAX);
  auto eng = Engine::create(*model, {.max_ctx = a.ctx,
                                     .n_slots = a.parallel,
                                     .kv_blocks = (int)kv_blocks,
                                     .prefix_cache = !a.no_prefix_cache,
                                     .batch_invariant = !a.no_batch_invariant,
                                     .kv_f16 = kv_f16});
  if (!eng) return fail(eng.error());
  EngineModel bm(*eng);
  SchedulerOptions so;
  so.prefill_budget = a.prefill_budget;
  so.max_queue = a.max_queue;
  const Tokenizer& tk = *tok;
  so.token_text = [&tk](int32_t t) { return tk.token_text(t); };
  Scheduler sched(bm, so);

  server::ApiContext ctx;
  ctx.tok = &*tok;
  ctx.chat_template = tmpl ? &*tmpl : nullptr;
  ctx.model_name = a.served_name.empty()
                       ? std::filesystem::path(a.model).lexically_normal().filename().string()
                       : a.served_name;
  if (ctx.model_name.empty()) ctx.model_name = std::filesystem::path(a.model).parent_path().filename().string();
  ctx.max_ctx = a.ctx;
  ctx.defaults = *defaults;
  ctx.bos = token_string(*tok, tok->bos_id());
  ctx.eos = token_string(*tok, tok->eos_id());

  server::ServeOptions so2;
  so2.host = a.host;
  so2.port = a.port;
  so2.api_key = key;
  so2.max_body_bytes = (size_t)(a.max_body_mb * 1024 * 1024);
  so2.http_threads = a.http_threads > 0 ? a.http_threads : std::max(64, 2 * a.parallel + 16);
  so2.drain_seconds = a.drain_seconds;

  server::Server srv(bm, sched, ctx, so2);
  auto port = srv.bind();
  if (!port) return fail(port.error());
  std::fprintf(stderr,
               "awq serve: %s (%s weights) as '%s' on http://%s:%d  parallel %d, ctx %d, KV %lld blocks "
               "(%.0f MiB)%s\n",
               a.model.c_str(), weights_kind(*model), ctx.model_name.c_str(), a.host.c_str(), *port,
               a.parallel, a.ctx, (long long)kv_blocks, eng->kv_bytes() / 1048576.0,
               key.empty() ? "" : ", API key required");
  std::fflush(stderr);
  std::thread watcher([&] {
    int sig = 0;
    sigwait(&set, &sig);
    std::fprintf(stderr, "awq serve: signal %d, shutting down\n", sig);
    srv.shutdown();
  });
  srv.serve();
  watcher.join();
  std::fprintf(stderr, "awq serve: stopped\n");
  return 0;
}

Register reg("serve", "OpenAI-compatible HTTP server with continuous batching", [](CLI::App& sub) {
  auto a = std::make_shared<ServeArgs>();
  sub.add_option("model", a->model, "model directory (HF or AWQ)")->required();
  sub.add_option("--host", a->host, "listen address")->capture_default_str();
  sub.add_option("--port", a->port, "listen port (0 = any free port)")->capture_default_str();
  sub.add_option("--parallel", a->parallel, "max sequences decoded together")->capture_default_str();
  sub.add_option("--ctx", a->ctx, "max tokens per sequence (prompt + generated)")->capture_default_str();
  sub.add_option("--kv-cache-mb", a->kv_cache_mb, "KV cache memory budget (MiB)")->capture_default_str();
  sub.add_option("--kv-dtype", a->kv_dtype, "K/V storage: f16 (as llama.cpp's server and vLLM keep it: half the memory, less to "
                 "read per decode step) or f32 (exact: incremental decoding equals the full forward)")
      ->check(CLI::IsMember({"f32", "f16"}))
      ->capture_default_str();
  sub.add_option("--threads,-t", a->threads, "compute threads (0 = all)");
  sub.add_option("--api-key", a->api_key, "require 'Authorization: Bearer KEY' (or env AWQ_API_KEY)");
  sub.add_option("--max-queue", a->max_queue, "waiting sequences beyond which requests get 503")->capture_default_str();
  sub.add_option("--served-model-name", a->served_name, "model name in the API (default: the folder name)");
  sub.add_option("--prefill-budget", a->prefill_budget, "prompt tokens per engine step (chunked prefill)")->capture_default_str();
  sub.add_option("--http-threads", a->http_threads, "HTTP worker threads (0 = max(64, 2 x parallel + 16))");
  sub.add_option("--max-body-mb", a->max_body_mb, "largest request body (MiB); larger is 413")->capture_default_str();
  sub.add_option("--drain-seconds", a->drain_seconds, "on SIGINT/SIGTERM: time in-flight requests get to finish")->capture_default_str();
  sub.add_flag("--no-batch-invariant", a->no_batch_invariant,
               "faster prefill (dequant + sgemm for many rows), but tokens may depend on batching");
  sub.add_flag("--no-prefix-cache", a->no_prefix_cache, "do not reuse KV blocks of earlier prompts");
  sub.add_flag("--no-w4", a->no_w4, "AWQ checkpoints: dequantize to fp32 instead of W4 kernels");
  return [a]() { return run_serve(*a); };
});

}  // namespace
}  // namespace awq::cli
