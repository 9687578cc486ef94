#include "runtime/scheduler.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <unordered_map>

#include <omp.h>

#include "core/chunk_pool.h"
#include "runtime/generate.h"

namespace awq {

struct Scheduler::Req {
  GenRequest g;
  std::shared_ptr<RequestStream> out;
  std::vector<std::unique_ptr<Seq>> seqs;
  int n_done = 0;
};

struct Scheduler::Seq {
  Req* req = nullptr;
  int index = 0, slot = -1;
  std::vector<int32_t> tokens;  // prompt + generated
  int n_prompt = 0, computed = 0, generated = 0;
  Sampler sampler;
  TextStream text;
  std::unordered_map<int32_t, int> counts;  // generated token counts (presence/frequency)
  bool done = false;
  Seq(Req* r, int i, const SamplingParams& sp)
      : req(r), index(i), sampler(sp), text(r->g.stop) {}
};

namespace {
// presence / frequency penalties (OpenAI's), on the row in place; returns the row.
template <class SeqT>
float* apply_penalties(const GenRequest& g, const SeqT& s, float* row) {
  if (g.presence_penalty != 0 || g.frequency_penalty != 0)
    for (const auto& [tok, c] : s.counts) row[tok] -= g.frequency_penalty * c + g.presence_penalty;
  return row;
}
}  // namespace

// ---- RequestStream ----

void RequestStream::push(GenEvent e) {
  {
    std::lock_guard<std::mutex> lk(mu_);
    q_.push_back(std::move(e));
  }
  cv_.notify_all();
}

bool RequestStream::pop(GenEvent& e, std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lk(mu_);
  if (!cv_.wait_for(lk, timeout, [&] { return !q_.empty(); })) return false;
  e = std::move(q_.front());
  q_.pop_front();
  return true;
}

// ---- Scheduler ----

Scheduler::Scheduler(BatchModel& model, SchedulerOptions opt)
    : model_(model), opt_(std::move(opt)), t0_(std::chrono::steady_clock::now()) {
  for (int s = model_.kv().n_slots() - 1; s >= 0; --s) free_slots_.push_back(s);
  if (opt_.prefill_budget < 1) opt_.prefill_budget = 1;
  stats_.kv = model_.kv().stats();
}

double Scheduler::now() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0_).count();
}

std::shared_ptr<RequestStream> Scheduler::submit(GenRequest req, SubmitError* err, std::string* msg) {
  auto fail = [&](SubmitError e, std::string m) -> std::shared_ptr<RequestStream> {
    if (err) *err = e;
    if (msg) *msg = std::move(m);
    return nullptr;
  };
  const int P = (int)req.prompt.size();
  if (P == 0) return fail(SubmitError::kInvalid, "the prompt is empty");
  if (P >= model_.max_ctx())
    return fail(SubmitError::kInvalid, "the prompt has " + std::to_string(P) +
                                           " tokens; the context is " +
                                           std::to_string(model_.max_ctx()) +
                                           " tokens (prompt plus at least one generated token)");
  if (KvPool::blocks_for(P + 1) > model_.kv().n_blocks())
    return fail(SubmitError::kInvalid, "the prompt needs " + std::to_string(KvPool::blocks_for(P + 1)) +
                                           " KV blocks; the pool has " +
                                           std::to_string(model_.kv().n_blocks()));
  if (req.n < 1) return fail(SubmitError::kInvalid, "n must be >= 1");
  if (req.max_tokens < 1) return fail(SubmitError::kInvalid, "max_tokens must be >= 1");
  for (int32_t t : req.prompt)
    if (t < 0 || t >= model_.vocab())
      return fail(SubmitError::kInvalid, "token id " + std::to_string(t) + " is out of range [0, " +
                                             std::to_string(model_.vocab()) + ")");
  auto r = std::make_shared<Req>();
  r->g = std::move(req);
  r->out = std::make_shared<RequestStream>();
  r->out->n_ = r->g.n;
  r->out->prompt_tokens_ = P;
  r->out->t_submit_ = now();
  for (int i = 0; i < r->g.n; ++i) {
    SamplingParams sp = r->g.sampling;
    sp.seed += (uint64_t)i;  // distinct choices under one seed
    auto s = std::make_unique<Seq>(r.get(), i, sp);
    s->tokens = r->g.prompt;
    s->n_prompt = P;
    r->seqs.push_back(std::move(s));
  }
  {
    std::lock_guard<std::mutex> lk(mu_);
    if (shutting_down_) return fail(SubmitError::kShuttingDown, "the server is shutting down");
    if (stats_.waiting + (int)incoming_.size() >= opt_.max_queue)
      return fail(SubmitError::kQueueFull, "the request queue is full (" +
                                               std::to_string(opt_.max_queue) + " waiting)");
    incoming_.push_back(r);
  }
  cv_.notify_all();
  if (err) *err = SubmitError::kNone;
  return r->out;
}

void Scheduler::shutdown() {
  std::lock_guard<std::mutex> lk(mu_);
  shutting_down_ = true;
}

void Scheduler::abort_all() {
  {
    std::lock_guard<std::mutex> lk(mu_);
    abort_ = true;
  }
  cv_.notify_all();
}

bool Scheduler::idle() const {
  std::lock_guard<std::mutex> lk(mu_);
  return incoming_.empty() && stats_.running == 0 && stats_.waiting == 0;
}

SchedulerStats Scheduler::stats() const {
  std::lock_guard<std::mutex> lk(mu_);
  SchedulerStats s = stats_;
  for (const auto& r : incoming_) s.waiting += r->g.n;
  return s;
}

void Scheduler::finish(Seq& s, const std::string& reason, const std::string& error) {
  if (s.done) return;
  if (s.slot >= 0) {
    model_.release(s.slot);
    free_slots_.push_back(s.slot);
    s.slot = -1;
    std::erase(running_, &s);
  } else {
    std::erase(waiting_, &s);
  }
  s.done = true;
  ++s.req->n_done;
  GenEvent e;
  e.index = s.index;
  e.finished = true;
  e.finish_reason = reason;
  e.error = error;
  e.text = s.text.flush();
  e.t = now();
  s.req->out->push(std::move(e));
}

void Scheduler::preempt(Seq& s) {
  model_.release(s.slot);
  free_slots_.push_back(s.slot);
  s.slot = -1;
  s.computed = 0;
  std::erase(running_, &s);
  waiting_.push_front(&s);
  std::lock_guard<std::mutex> lk(mu_);
  ++stats_.preemptions;
}

GenEvent Scheduler::choose_token(Seq& s, float* row) const {
  const GenRequest& g = s.req->g;
  const int V = model_.vocab();
  GenEvent e;
  e.index = s.index;
  // logprobs of the model's distribution (before penalties and temperature), as vLLM returns
  if (g.logprobs >= 0) {
    const float mx = *std::max_element(row, row + V);
    double sum = 0;
    for (int j = 0; j < V; ++j) sum += std::exp((double)row[j] - mx);
    const float lse = mx + (float)std::log(sum);
    std::vector<float> logp(V);
    for (int j = 0; j < V; ++j) logp[j] = row[j] - lse;
    const int k = std::min(g.logprobs, V);
    std::vector<int32_t> idx(V);
    std::iota(idx.begin(), idx.end(), 0);
    std::partial_sort(idx.begin(), idx.begin() + k, idx.end(),
                      [&](int32_t a, int32_t b) { return logp[a] > logp[b] || (logp[a] == logp[b] && a < b); });
    for (int i = 0; i < k; ++i) e.top.push_back({idx[i], logp[idx[i]]});
    e.token = s.sampler.sample(apply_penalties(g, s, row), V, s.tokens);
    e.logprob = logp[e.token];
    return e;
  }
  e.token = s.sampler.sample(apply_penalties(g, s, row), V, s.tokens);
  return e;
}

void Scheduler::emit_token(Seq& s, GenEvent e) {
  const GenRequest& g = s.req->g;
  const int32_t t = e.token;
  if (g.stop_ids.count(t)) {
    finish(s, "stop");
    return;
  }
  s.tokens.push_back(t);
  ++s.generated;
  ++s.counts[t];
  {
    std::lock_guard<std::mutex> lk(mu_);
    ++stats_.generated_tokens;
  }
  e.text = s.text.push(opt_.token_text ? opt_.token_text(t) : std::string());
  e.t = now();
  s.req->out->push(std::move(e));
  if (s.text.stopped())
    finish(s, "stop");
  else if (s.generated >= g.max_tokens || (int)s.tokens.size() >= model_.max_ctx())
    finish(s, "length");
}

bool Scheduler::step() {
  bool abort = false;
  {
    std::lock_guard<std::mutex> lk(mu_);
    for (auto& r : incoming_) {
      for (auto& s : r->seqs) waiting_.push_back(s.get());
      live_.push_back(std::move(r));
    }
    incoming_.clear();
    abort = abort_;
  }
  bool did = false;
  // 1. cancelled (client gone) or aborted (shutdown) requests leave now
  for (auto& r : live_)
    if (abort || r->out->cancelled())
      for (auto& s : r->seqs)
        if (!s->done) {
          finish(*s, abort ? "abort" : "cancelled");
          did = true;
        }

  // 2. FIFO admission: whole prompt (+1 token) must fit beside what admitted prefills need
  auto pending = [](const Seq* s) { return (int)s->tokens.size() - s->computed; };
  const KvPool& kv = model_.kv();
  int promised = 0;
  for (const Seq* s : running_) promised += kv.blocks_needed(s->slot, pending(s) + 1);
  while (!waiting_.empty() && !free_slots_.empty()) {
    Seq* s = waiting_.front();
    const int slot = free_slots_.back();
    const int got = model_.attach_prefix(slot, s->tokens);
    const int need = kv.blocks_needed(slot, (int)s->tokens.size() - got + 1);
    if (need + promised > kv.stats().available()) {
      model_.release(slot);
      if (running_.empty()) {  // can never fit (a resumed sequence longer than the pool holds)
        finish(*s, "length");
        did = true;
        continue;
      }
      break;  // the head waits; nobody overtakes it
    }
    waiting_.pop_front();
    free_slots_.pop_back();
    s->slot = slot;
    s->computed = got;
    running_.push_back(s);
    promised += need;
    if (s->generated == 0) {
      int prev = s->req->out->cached_tokens_.load();
      while (got > prev && !s->req->out->cached_tokens_.compare_exchange_weak(prev, got)) {}
    }
  }

  // 3. decoding sequences (one pending token) all advance; preempt the newest if the pool
  //    cannot grow them
  for (;;) {
    int grow = 0;
    for (const Seq* s : running_)
      if (pending(s) == 1) grow += kv.blocks_needed(s->slot, 1);
    if (grow <= kv.stats().available() || running_.empty()) break;
    Seq* victim = running_.back();
    if (running_.size() == 1) {
      finish(*victim, "length");  // alone and still does not fit: the pool is the limit
    } else {
      preempt(*victim);
    }
    did = true;
  }
  std::vector<SeqChunk> chunks;
  std::vector<Seq*> batch;
  int avail = kv.stats().available();
  for (Seq* s : running_)
    if (pending(s) == 1) {
      avail -= kv.blocks_needed(s->slot, 1);
      chunks.push_back({s->slot, std::span<const int32_t>(s->tokens.data() + s->computed, 1)});
      batch.push_back(s);
    }
  // 4. chunked prefill in admission order under the token budget
  int budget = opt_.prefill_budget;
  for (Seq* s : running_) {
    if (budget <= 0) break;
    if (pending(s) <= 1) continue;
    int c = std::min(pending(s), budget);
    const int len = (int)s->tokens.size() - pending(s);
    const int room = ((int)kv.table(s->slot).size() + std::max(0, avail)) * kBlockTokens - len;
    c = std::min(c, room);
    if (c <= 0) continue;
    avail -= kv.blocks_needed(s->slot, c);
    budget -= c;
    chunks.push_back({s->slot, std::span<const int32_t>(s->tokens.data() + s->computed, c)});
    batch.push_back(s);
  }

  // 5. one forward, then sample where a prompt is complete
  if (!chunks.empty()) {
    std::vector<float>& logits = logits_;  // reused across steps (no page faults per step)
    const Status st = model_.forward(chunks, logits);
    int64_t prompt_done = 0;
    if (!st.ok()) {
      for (Seq* s : batch) finish(*s, "error", st.message());
    } else {
      const int V = model_.vocab();
      std::vector<int> ready;  // batch entries whose prompt is complete: they get a token
      for (size_t i = 0; i < batch.size(); ++i) {
        Seq& s = *batch[i];
        const int c = (int)chunks[i].tokens.size();
        const int prompt_left = std::max(0, s.n_prompt - s.computed);
        prompt_done += std::min(c, prompt_left);
        s.computed += c;
        if (s.computed == (int)s.tokens.size()) ready.push_back((int)i);
      }
      // Sampling (a pass over the vocabulary per sequence) on every thread, then the events in
      // batch order on this one.
      std::vector<GenEvent> picked(ready.size());
      const auto pick = [&](int j) {
        picked[j] = choose_token(*batch[ready[j]], logits.data() + ready[j] * (size_t)V);
      };
      if (ready.size() > 1)
        parallel_chunks((int)ready.size(), omp_get_max_threads(), pick);
      else if (ready.size() == 1)
        pick(0);
      for (size_t j = 0; j < ready.size(); ++j) emit_token(*batch[ready[j]], std::move(picked[j]));
    }
    std::lock_guard<std::mutex> lk(mu_);
    ++stats_.steps;
    stats_.prompt_tokens_computed += prompt_done;
    did = true;
  }

  std::erase_if(live_, [](const std::shared_ptr<Req>& r) { return r->n_done == (int)r->seqs.size(); });
  {
    std::lock_guard<std::mutex> lk(mu_);
    stats_.running = (int)running_.size();
    stats_.waiting = (int)waiting_.size();
    stats_.kv = kv.stats();
    if (abort && live_.empty()) abort_ = false;
  }
  return did;
}

void Scheduler::run(const std::atomic<bool>& stop) {
  while (!stop.load()) {
    if (step()) continue;
    std::unique_lock<std::mutex> lk(mu_);
    cv_.wait_for(lk, std::chrono::milliseconds(20), [&] { return !incoming_.empty() || abort_; });
  }
}

}  // namespace awq
