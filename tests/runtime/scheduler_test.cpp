// Scheduler on a fake model: the fake keeps the real KvPool accounting (no tensors) and makes
// logits a pseudo-random function of the sequence's whole token history, so any mix-up of
// sequences, positions or recomputation after preemption changes the output.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <string>
#include <vector>

#include "runtime/scheduler.h"

using namespace awq;

namespace {

uint64_t mix(uint64_t h) {
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdull;
  h ^= h >> 33;
  h *= 0xc4ceb9fe1a85ec53ull;
  return h ^ (h >> 33);
}

class FakeModel final : public BatchModel {
 public:
  FakeModel(int n_blocks, int n_slots, int ctx = 512, int vocab = 50)
      : pool_(n_blocks, n_slots), ctx_(ctx), vocab_(vocab) {}
  int vocab() const override { return vocab_; }
  int max_ctx() const override { return ctx_; }
  const KvPool& kv() const override { return pool_; }
  int attach_prefix(int slot, std::span<const int32_t> p) override { return pool_.attach_prefix(slot, p); }
  void release(int slot) override { pool_.release(slot); }
  Status forward(std::span<const SeqChunk> chunks, std::vector<float>& logits) override {
    ++steps;
    std::vector<std::pair<int, int>> log;
    for (const SeqChunk& c : chunks) log.push_back({c.slot, (int)c.tokens.size()});
    step_log.push_back(log);
    if (fail_at_step == steps) return make_error("fake: injected failure");
    int need = 0;
    for (const SeqChunk& c : chunks) {
      if (pool_.len(c.slot) + (int)c.tokens.size() > ctx_) return make_error("fake: ctx overflow");
      need += pool_.blocks_needed(c.slot, (int)c.tokens.size());
    }
    if (need > pool_.stats().available()) return make_error("fake: KV pool overflow");
    logits.assign(chunks.size() * (size_t)vocab_, 0.0f);
    for (size_t i = 0; i < chunks.size(); ++i) {
      const SeqChunk& c = chunks[i];
      EXPECT_TRUE(pool_.reserve(c.slot, (int)c.tokens.size()));
      pool_.commit(c.slot, c.tokens);
      uint64_t h = 1469598103934665603ull;
      for (int32_t t : pool_.tokens(c.slot)) h = mix(h ^ (uint64_t)(t + 1));
      for (int j = 0; j < vocab_; ++j)
        logits[i * vocab_ + j] = (float)(mix(h + (uint64_t)j * 0x9E3779B97F4A7C15ull) % 1000) / 100.0f;
    }
    return Status::Ok();
  }

  KvPool pool_;
  int ctx_, vocab_;
  int steps = 0, fail_at_step = -1;
  std::vector<std::vector<std::pair<int, int>>> step_log;  // per forward: (slot, tokens)
};

std::string fake_text(int32_t t) { return "<" + std::to_string(t) + ">"; }

SchedulerOptions opts(int budget = 64, int max_queue = 64) {
  SchedulerOptions o;
  o.prefill_budget = budget;
  o.max_queue = max_queue;
  o.token_text = fake_text;
  return o;
}

std::vector<int32_t> prompt(int n, int seed) {
  std::vector<int32_t> p(n);
  for (int i = 0; i < n; ++i) p[i] = (int32_t)(mix((uint64_t)seed * 1000 + i) % 50);
  return p;
}

GenRequest req(std::vector<int32_t> p, int max_tokens, float temperature = 0) {
  GenRequest r;
  r.prompt = std::move(p);
  r.max_tokens = max_tokens;
  r.sampling.temperature = temperature;
  r.sampling.seed = 7;
  return r;
}

struct Result {
  std::vector<std::vector<int32_t>> tokens;
  std::vector<std::string> text, finish;
  int first_token_step = -1;
};

// Drive the scheduler until every stream has finished (bounded), collecting the results.
std::vector<Result> drain(Scheduler& s, FakeModel& m, std::vector<std::shared_ptr<RequestStream>> st,
                          int max_steps = 10000) {
  std::vector<Result> res(st.size());
  for (size_t i = 0; i < st.size(); ++i) {
    res[i].tokens.resize(st[i]->n());
    res[i].text.resize(st[i]->n());
    res[i].finish.resize(st[i]->n());
  }
  auto all_done = [&] {
    for (auto& r : res)
      for (auto& f : r.finish)
        if (f.empty()) return false;
    return true;
  };
  for (int k = 0; k < max_steps && !all_done(); ++k) {
    s.step();
    for (size_t i = 0; i < st.size(); ++i) {
      GenEvent e;
      while (st[i]->pop(e, std::chrono::milliseconds(0))) {
        if (e.token >= 0) {
          res[i].tokens[e.index].push_back(e.token);
          if (res[i].first_token_step < 0) res[i].first_token_step = m.steps;
        }
        res[i].text[e.index] += e.text;
        if (e.finished) res[i].finish[e.index] = e.finish_reason;
      }
    }
  }
  EXPECT_TRUE(all_done()) << "requests did not finish";
  return res;
}

Result alone(const GenRequest& r) {
  FakeModel m(64, 2);
  Scheduler s(m, opts());
  auto st = s.submit(r, nullptr, nullptr);
  EXPECT_TRUE(st);
  return drain(s, m, {st})[0];
}

void expect_pool_empty(const Scheduler& s, const FakeModel& m) {
  const SchedulerStats st = s.stats();
  EXPECT_EQ(st.running, 0);
  EXPECT_EQ(st.waiting, 0);
  EXPECT_EQ(st.kv.used, 0);
  EXPECT_EQ(m.pool_.stats().used, 0);
}

}  // namespace

TEST(Scheduler, BlocksReturnToZeroAfterFinishedStoppedCancelledFailed) {
  // stop string: the text of the third greedy token of a reference run
  const auto p = prompt(21, 1);
  const Result ref = alone(req(p, 8));
  ASSERT_EQ(ref.tokens[0].size(), 8u);
  FakeModel m(64, 4);
  Scheduler s(m, opts());
  auto finished = s.submit(req(p, 8), nullptr, nullptr);
  GenRequest stop = req(p, 8);
  stop.stop = {fake_text(ref.tokens[0][2])};
  auto stopped = s.submit(stop, nullptr, nullptr);
  auto cancelled = s.submit(req(prompt(40, 3), 100), nullptr, nullptr);
  ASSERT_TRUE(finished && stopped && cancelled);
  s.step();
  s.step();
  EXPECT_GT(s.stats().kv.used, 0);
  cancelled->cancel();
  auto res = drain(s, m, {finished, stopped, cancelled});
  EXPECT_EQ(res[0].finish[0], "length");
  EXPECT_EQ(res[0].tokens[0], ref.tokens[0]);
  EXPECT_EQ(res[1].finish[0], "stop");
  EXPECT_EQ(res[1].tokens[0].size(), 3u);
  // the stop string itself is not part of the text
  EXPECT_EQ(res[1].text[0], fake_text(ref.tokens[0][0]) + fake_text(ref.tokens[0][1]));
  EXPECT_EQ(res[2].finish[0], "cancelled");
  expect_pool_empty(s, m);

  // a stop id ends the sequence without emitting it
  GenRequest sid = req(p, 8);
  sid.stop_ids = {ref.tokens[0][1]};
  auto r2 = drain(s, m, {s.submit(sid, nullptr, nullptr)});
  EXPECT_EQ(r2[0].finish[0], "stop");
  EXPECT_EQ(r2[0].tokens[0], std::vector<int32_t>(ref.tokens[0].begin(), ref.tokens[0].begin() + 1));
  expect_pool_empty(s, m);

  // a failing forward fails the sequences in it and frees their blocks
  m.fail_at_step = m.steps + 2;
  auto r3 = drain(s, m, {s.submit(req(prompt(50, 4), 20), nullptr, nullptr)});
  EXPECT_EQ(r3[0].finish[0], "error");
  expect_pool_empty(s, m);
}

TEST(Scheduler, ChunkedPrefillInterleavesWithDecoding) {
  FakeModel m(64, 4);
  Scheduler s(m, opts(/*budget=*/16));
  auto dec = s.submit(req(prompt(5, 1), 40), nullptr, nullptr);
  s.step();  // short prompt prefilled, first token out: now decoding
  s.step();
  auto longp = s.submit(req(prompt(100, 2), 4), nullptr, nullptr);
  const size_t first = m.step_log.size();
  auto res = drain(s, m, {dec, longp});
  // while the long prompt is prefilled (100 tokens at <= 16 per step), every step also
  // advances the decoding sequence by one token
  int prefill_steps = 0;
  for (size_t k = first; k < m.step_log.size(); ++k) {
    const auto& log = m.step_log[k];
    int big = 0;
    bool has_decode = false;
    for (auto [slot, n] : log) {
      EXPECT_LE(n, 16);
      if (n > 1) big += n;
      if (n == 1) has_decode = true;
    }
    if (big > 0) {
      ++prefill_steps;
      EXPECT_TRUE(has_decode) << "step " << k << " prefilled without decoding";
    }
  }
  EXPECT_GE(prefill_steps, 6);  // ceil(100 / 16) = 7 chunks (the last may be a 4-token one)
  EXPECT_EQ(res[0].tokens[0], alone(req(prompt(5, 1), 40)).tokens[0]);
  EXPECT_EQ(res[1].tokens[0], alone(req(prompt(100, 2), 4)).tokens[0]);
  expect_pool_empty(s, m);
}

TEST(Scheduler, FifoUnderAFullPool) {
  // 10 blocks: A (70-token prompt, 5 blocks + growth) runs; B (80: 6 blocks) does not fit
  // beside it;
  // C (8 tokens) would fit but must not overtake B.
  FakeModel m(10, 4);
  Scheduler s(m, opts(/*budget=*/256));
  auto a = s.submit(req(prompt(70, 1), 20), nullptr, nullptr);
  s.step();
  auto b = s.submit(req(prompt(80, 2), 4), nullptr, nullptr);
  auto c = s.submit(req(prompt(8, 3), 4), nullptr, nullptr);
  s.step();
  EXPECT_EQ(s.stats().running, 1);
  EXPECT_EQ(s.stats().waiting, 2);
  auto res = drain(s, m, {a, b, c});
  EXPECT_LT(res[0].first_token_step, res[1].first_token_step);
  EXPECT_LE(res[1].first_token_step, res[2].first_token_step);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(res[i].finish[0], "length");
  expect_pool_empty(s, m);
}

TEST(Scheduler, PreemptionResumesExactly) {
  // Four sequences grow past what a 12-block pool holds together: the newest are preempted
  // and recomputed later. Outputs (greedy and sampled) equal each request run alone.
  std::vector<GenRequest> rs;
  for (int i = 0; i < 4; ++i) rs.push_back(req(prompt(20 + 3 * i, 10 + i), 40, i % 2 ? 0.8f : 0.0f));
  FakeModel m(12, 4);
  Scheduler s(m, opts());
  std::vector<std::shared_ptr<RequestStream>> st;
  for (auto& r : rs) st.push_back(s.submit(r, nullptr, nullptr));
  auto res = drain(s, m, st);
  EXPECT_GT(s.stats().preemptions, 0);
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(res[i].finish[0], "length");
    EXPECT_EQ(res[i].tokens[0], alone(rs[i]).tokens[0]) << "request " << i;
  }
  expect_pool_empty(s, m);
}

TEST(Scheduler, BatchingAndPrefixCacheChangeNothing) {
  FakeModel m(128, 8);
  Scheduler s(m, opts(32));
  std::vector<GenRequest> rs;
  const auto system = prompt(48, 99);  // a shared 3-block prefix
  for (int i = 0; i < 6; ++i) {
    auto p = system;
    auto tail = prompt(5 + i, 200 + i);
    p.insert(p.end(), tail.begin(), tail.end());
    rs.push_back(req(p, 12));
  }
  std::vector<std::shared_ptr<RequestStream>> st;
  st.push_back(s.submit(rs[0], nullptr, nullptr));
  drain(s, m, {st[0]});
  for (int i = 1; i < 6; ++i) st.push_back(s.submit(rs[i], nullptr, nullptr));
  auto res = drain(s, m, std::vector<std::shared_ptr<RequestStream>>(st.begin() + 1, st.end()));
  for (int i = 1; i < 6; ++i) {
    EXPECT_EQ(st[i]->cached_tokens(), 48) << i;
    EXPECT_EQ(res[i - 1].tokens[0], alone(rs[i]).tokens[0]) << i;
  }
  expect_pool_empty(s, m);
}

TEST(Scheduler, NChoicesAreIndependentSequences) {
  FakeModel m(64, 4);
  Scheduler s(m, opts());
  GenRequest r = req(prompt(10, 5), 6, 1.0f);
  r.n = 3;
  auto res = drain(s, m, {s.submit(r, nullptr, nullptr)});
  ASSERT_EQ(res[0].tokens.size(), 3u);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(res[0].tokens[i].size(), 6u);
  EXPECT_NE(res[0].tokens[0], res[0].tokens[1]);  // seeds differ per choice
  expect_pool_empty(s, m);
}

TEST(Scheduler, RejectsBadRequestsAndAFullQueue) {
  FakeModel m(8, 2, /*ctx=*/64);
  Scheduler s(m, opts(64, /*max_queue=*/2));
  SubmitError e;
  std::string msg;
  EXPECT_FALSE(s.submit(req({}, 4), &e, &msg));
  EXPECT_EQ(e, SubmitError::kInvalid);
  EXPECT_FALSE(s.submit(req(prompt(64, 1), 4), &e, &msg));
  EXPECT_EQ(e, SubmitError::kInvalid);
  EXPECT_NE(msg.find("context"), std::string::npos) << msg;
  EXPECT_FALSE(s.submit(req({1, 2, 99}, 4), &e, &msg));
  EXPECT_EQ(e, SubmitError::kInvalid);
  EXPECT_FALSE(s.submit(req(prompt(4, 1), 0), &e, &msg));
  EXPECT_EQ(e, SubmitError::kInvalid);
  EXPECT_TRUE(s.submit(req(prompt(4, 1), 4), &e, &msg));
  EXPECT_TRUE(s.submit(req(prompt(4, 2), 4), &e, &msg));
  EXPECT_FALSE(s.submit(req(prompt(4, 3), 4), &e, &msg));
  EXPECT_EQ(e, SubmitError::kQueueFull);
  s.shutdown();
  s.abort_all();
  for (int i = 0; i < 3; ++i) s.step();
  EXPECT_FALSE(s.submit(req(prompt(4, 4), 4), &e, &msg));
  EXPECT_EQ(e, SubmitError::kShuttingDown);
  expect_pool_empty(s, m);
}
