#include "core/chunk_pool.h"

#include <omp.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <string>
#include <cstdint>
#include <mutex>
#include <thread>
#include <vector>

#if defined(__x86_64__)
#include <immintrin.h>
#define AWQ_PAUSE() _mm_pause()
#else
#define AWQ_PAUSE() ((void)0)
#endif

namespace awq {
namespace {

// The job word: generation (20 bits) | chunk count (22 bits) | next chunk to claim (22 bits), so
// a claim (CAS) can only take a chunk of the job the claimer read.
constexpr int kIdxBits = 22;
constexpr uint64_t kIdxMask = (uint64_t(1) << kIdxBits) - 1;
constexpr int kMaxChunks = (1 << kIdxBits) - 1;

thread_local bool tl_in_chunk = false;  // this thread is running a chunk (or is a caller)

struct Pool {
  std::atomic<uint64_t> word{0};
  std::atomic<uint32_t> gen_signal{0};  // futex the workers sleep on (bumped per job)
  std::atomic<int> done{0};
  std::atomic<int> sleepers{0};         // workers in (or entering) gen_signal.wait
  std::atomic<int> max_helpers{0};      // workers allowed to help with the current job
  const std::function<void(int)>* fn = nullptr;  // valid while the current job is unfinished
  std::vector<std::thread> workers;
  std::mutex caller_mu;

  static uint64_t gen_of(uint64_t w) { return w >> (2 * kIdxBits); }
  static int n_of(uint64_t w) { return (int)((w >> kIdxBits) & kIdxMask); }
  static int idx_of(uint64_t w) { return (int)(w & kIdxMask); }

  // Claims and runs chunks of the job of generation g until none is left.
  void work(uint64_t g) {
    uint64_t w = word.load(std::memory_order_acquire);
    for (;;) {
      if (gen_of(w) != g || idx_of(w) >= n_of(w)) return;
      if (!word.compare_exchange_weak(w, w + 1, std::memory_order_acq_rel)) continue;
      tl_in_chunk = true;
      (*fn)(idx_of(w));
      tl_in_chunk = false;
      done.fetch_add(1, std::memory_order_release);
      w = word.load(std::memory_order_acquire);
    }
  }

  void worker_loop(int id) {
    uint64_t seen = 0;
    for (;;) {
      uint64_t w = word.load(std::memory_order_acquire);
      int spins = 0;
      while (gen_of(w) == seen) {
        if (++spins < 40000) {  // ~1 ms: the gap between decode steps stays in the spin
          AWQ_PAUSE();
        } else {
          sleepers.fetch_add(1, std::memory_order_seq_cst);
          const uint32_t sig = gen_signal.load(std::memory_order_seq_cst);
          w = word.load(std::memory_order_seq_cst);
          if (gen_of(w) == seen) gen_signal.wait(sig, std::memory_order_seq_cst);
          sleepers.fetch_sub(1, std::memory_order_seq_cst);
          spins = 0;
        }
        w = word.load(std::memory_order_acquire);
      }
      seen = gen_of(w);
      if (id < max_helpers.load(std::memory_order_acquire)) work(seen);
    }
  }

  void ensure_workers(int n) {
    while ((int)workers.size() < n) {
      const int id = (int)workers.size();
      workers.emplace_back([this, id] { worker_loop(id); });
      workers.back().detach();  // process lifetime (they sleep when idle)
    }
  }
};

Pool& pool() {
  static Pool* p = new Pool;  // never destroyed: detached workers use it until exit
  return *p;
}

}  // namespace

void parallel_chunks(int n_chunks, int n_threads, const std::function<void(int)>& fn) {
  if (n_chunks <= 0) return;
  if (n_threads <= 1 || n_chunks == 1 || n_chunks > kMaxChunks) {
    for (int c = 0; c < n_chunks; ++c) fn(c);
    return;
  }
  static const bool use_pool = [] {
    const char* e = std::getenv("AWQ_FORK");
    return e && std::string(e) == "pool";
  }();
  if (!use_pool) {  // default: OpenMP's dynamic schedule (as before the pool)
#pragma omp parallel for num_threads(n_threads) schedule(dynamic, 1)
    for (int c = 0; c < n_chunks; ++c) fn(c);
    return;
  }
  Pool& p = pool();
  // Inside an OpenMP team (a nested loop ran on one thread before too), or while another caller
  // has the pool: run here, serially.
  if (tl_in_chunk || omp_in_parallel()) {
    for (int c = 0; c < n_chunks; ++c) fn(c);
    return;
  }
  std::unique_lock<std::mutex> lk(p.caller_mu, std::try_to_lock);
  if (!lk.owns_lock()) {
    for (int c = 0; c < n_chunks; ++c) fn(c);
    return;
  }
  const int helpers = std::min(n_threads - 1, (int)std::thread::hardware_concurrency());
  p.ensure_workers(helpers);
  p.max_helpers.store(helpers, std::memory_order_relaxed);
  p.fn = &fn;
  p.done.store(0, std::memory_order_relaxed);
  const uint64_t g = (Pool::gen_of(p.word.load(std::memory_order_relaxed)) + 1) & ((1u << 20) - 1);
  const uint64_t gen = g == 0 ? 1 : g;  // 0 is the workers' initial "seen"
  p.word.store((gen << (2 * kIdxBits)) | ((uint64_t)n_chunks << kIdxBits), std::memory_order_seq_cst);
  p.gen_signal.fetch_add(1, std::memory_order_seq_cst);
  // A worker either sees the new word before it sleeps, or it counted itself in sleepers first
  // (seq_cst both sides): no futex call per job while the workers spin.
  if (p.sleepers.load(std::memory_order_seq_cst) > 0) p.gen_signal.notify_all();
  p.work(gen);
  // Only chunks already claimed by a worker are left: wait for those.
  int spins = 0;
  while (p.done.load(std::memory_order_acquire) < n_chunks) {
    if (++spins < 4000) {
      AWQ_PAUSE();
    } else {
      std::this_thread::yield();  // let a descheduled worker finish its chunk
    }
  }
}

}  // namespace awq
