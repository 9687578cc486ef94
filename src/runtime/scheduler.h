// Continuous batching over a paged-KV model.
//
// A request (prompt tokens, sampling, max_tokens, stops, n) becomes n sequences. Each step():
//   1. cancelled requests leave (their blocks are freed);
//   2. waiting sequences are admitted in FIFO order while a slot is free and the pool can hold
//      their whole prompt (+1 token) on top of what admitted prefills still need; the head of
//      the queue blocks later ones (no overtaking, so no starvation);
//   3. every running sequence in decode gets its next token; if the pool cannot grow them all,
//      the most recently admitted sequences are PREEMPTED: their blocks are freed and they go
//      back to the front of the queue, to be recomputed (prompt + tokens generated so far) when
//      re-admitted; their sampler state is kept, so the output is what it would have been;
//   4. prefilling sequences share a budget of prompt tokens per step (chunked prefill), in
//      admission order, so a long prompt never stalls the decoding ones;
//   5. one forward over all chunks; sequences whose prompt is complete sample a token; a
//      sequence finishes at a stop id, a stop string, max_tokens or the context end, and its
//      slot and blocks are released at once.
// Prefix caching comes from the model's KV pool (attach_prefix at admission).
//
// Threads: submit(), cancel() and stats() may be called from any thread; step()/run() from one
// engine thread. Results go to each request's RequestStream (a queue the caller waits on).
#pragma once
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <unordered_set>
#include <vector>

#include "core/status.h"
#include "runtime/engine.h"
#include "runtime/kv_pool.h"
#include "runtime/sampler.h"

namespace awq {

// What the scheduler needs from a model: the Engine (EngineModel below) or a fake in tests.
class BatchModel {
 public:
  virtual ~BatchModel() = default;
  virtual int vocab() const = 0;
  virtual int max_ctx() const = 0;
  virtual const KvPool& kv() const = 0;
  virtual int attach_prefix(int slot, std::span<const int32_t> prompt) = 0;
  virtual void release(int slot) = 0;
  // Logits [vocab] of the last token of each chunk, in chunk order.
  virtual Status forward(std::span<const SeqChunk> chunks, std::vector<float>& logits) = 0;
};

class EngineModel final : public BatchModel {
 public:
  explicit EngineModel(Engine& e) : e_(e) {}
  int vocab() const override { return e_.vocab(); }
  int max_ctx() const override { return e_.max_ctx(); }
  const KvPool& kv() const override { return e_.kv(); }
  int attach_prefix(int slot, std::span<const int32_t> p) override { return e_.attach_prefix(slot, p); }
  void release(int slot) override { e_.reset(slot); }
  Status forward(std::span<const SeqChunk> c, std::vector<float>& lg) override {
    return e_.forward(c, lg, false);
  }

 private:
  Engine& e_;
};

struct GenRequest {
  std::vector<int32_t> prompt;
  SamplingParams sampling;
  float presence_penalty = 0, frequency_penalty = 0;  // OpenAI semantics, over generated tokens
  int max_tokens = 16;
  int n = 1;
  std::vector<std::string> stop;          // stop strings (not included in the text)
  std::unordered_set<int32_t> stop_ids;   // eos ids and user stop token ids (not emitted)
  int logprobs = -1;                      // -1: none; k >= 0: the token's logprob + top k
};

struct GenEvent {
  int index = 0;        // choice (sequence) index in [0, n)
  int32_t token = -1;   // -1 for a finish-only event
  std::string text;     // text released by this token (UTF-8 complete, stop strings held back)
  float logprob = 0;
  std::vector<std::pair<int32_t, float>> top;  // top logprobs, best first
  bool finished = false;
  std::string finish_reason;  // stop | length | cancelled | abort | error
  std::string error;
  double t = 0;  // steady-clock seconds when the event was produced
};

// One request's output queue; shared by the scheduler and the caller.
class RequestStream {
 public:
  // Wait up to `timeout` for the next event; false on timeout.
  bool pop(GenEvent& e, std::chrono::milliseconds timeout);
  void cancel() { cancelled_ = true; }
  bool cancelled() const { return cancelled_; }
  int n() const { return n_; }
  int prompt_tokens() const { return prompt_tokens_; }
  int cached_tokens() const { return cached_tokens_.load(); }  // prompt tokens reused (max over choices)
  double t_submit() const { return t_submit_; }

 private:
  friend class Scheduler;
  void push(GenEvent e);
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<GenEvent> q_;
  std::atomic<bool> cancelled_{false};
  std::atomic<int> cached_tokens_{0};
  int n_ = 1, prompt_tokens_ = 0;
  double t_submit_ = 0;
};

struct SchedulerOptions {
  int prefill_budget = 256;  // prompt tokens per step, over all prefilling sequences
  int max_queue = 256;       // waiting requests beyond which submit() refuses
  std::function<std::string(int32_t)> token_text;  // bytes of a token (for stop strings)
};

struct SchedulerStats {
  int running = 0, waiting = 0;
  KvStats kv;
  int64_t steps = 0, preemptions = 0, prompt_tokens_computed = 0, generated_tokens = 0;
};

enum class SubmitError { kNone, kInvalid, kQueueFull, kShuttingDown };

class Scheduler {
 public:
  Scheduler(BatchModel& model, SchedulerOptions opt);

  // Queue a request. Errors: kInvalid (empty prompt, prompt too long for the context or the
  // pool, n or max_tokens < 1, a bad token id), kQueueFull, kShuttingDown; *msg says why.
  std::shared_ptr<RequestStream> submit(GenRequest req, SubmitError* err, std::string* msg);

  // One scheduling step (engine thread). Returns false if there was nothing to do.
  bool step();
  // Engine loop: step until stop is set, sleeping while idle.
  void run(const std::atomic<bool>& stop);
  // Refuse new requests from now on; finish everything in flight with finish_reason "abort".
  void shutdown();
  void abort_all();
  bool idle() const;

  SchedulerStats stats() const;

 private:
  struct Seq;
  struct Req;
  void finish(Seq& s, const std::string& reason, const std::string& error = "");
  void preempt(Seq& s);
  // Picks the next token of s from its logits row (penalties applied to the row in place):
  // touches only s and the row, so the sequences of a step pick theirs in parallel.
  GenEvent choose_token(Seq& s, float* logits) const;
  void emit_token(Seq& s, GenEvent e);
  double now() const;

  BatchModel& model_;
  SchedulerOptions opt_;
  mutable std::mutex mu_;          // guards incoming_, stats_, shutting_down_, abort_
  std::condition_variable cv_;
  std::deque<std::shared_ptr<Req>> incoming_;
  SchedulerStats stats_;
  bool shutting_down_ = false, abort_ = false;
  int n_incoming_waiting_ = 0;

  // engine thread only
  std::deque<Seq*> waiting_;   // FIFO (preempted sequences go back to the front)
  std::vector<Seq*> running_;  // admission order
  std::vector<std::shared_ptr<Req>> live_;
  std::vector<int> free_slots_;
  std::vector<float> logits_;  // step logits (reused across steps)
  std::chrono::steady_clock::time_point t0_;
};

}  // namespace awq
