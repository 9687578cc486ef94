// KvPool: block accounting, prefix-cache hits, LRU eviction, copy-on-truncate.
#include <gtest/gtest.h>

#include <numeric>
#include <vector>

#include "runtime/kv_pool.h"

using namespace awq;

namespace {

std::vector<int32_t> seq(int n, int32_t start = 0) {
  std::vector<int32_t> v(n);
  std::iota(v.begin(), v.end(), start);
  return v;
}

// Reserve + commit, as the engine does for one forward.
void append(KvPool& p, int slot, const std::vector<int32_t>& t) {
  ASSERT_TRUE(p.reserve(slot, (int)t.size()));
  p.commit(slot, t);
}

void expect_consistent(const KvPool& p) {
  const KvStats s = p.stats();
  EXPECT_EQ(s.used + s.cached + s.free, s.total);
  EXPECT_GE(s.used, 0);
}

}  // namespace

TEST(KvPool, BlocksFollowTokensAndReturnOnRelease) {
  KvPool p(10, 2);
  EXPECT_EQ(p.stats().free, 10);
  append(p, 0, seq(17));  // 2 blocks
  EXPECT_EQ(p.stats().used, 2);
  EXPECT_EQ(p.len(0), 17);
  EXPECT_EQ(p.blocks_needed(0, 15), 0);
  EXPECT_EQ(p.blocks_needed(0, 16), 1);
  append(p, 1, seq(5, 100));
  EXPECT_EQ(p.stats().used, 3);
  expect_consistent(p);
  p.release(0);
  p.release(1);
  const KvStats s = p.stats();
  EXPECT_EQ(s.used, 0);
  EXPECT_EQ(s.cached, 1);  // slot 0's one full block stays reusable
  EXPECT_EQ(s.free, 9);
}

TEST(KvPool, ReserveFailsWithoutChangingState) {
  KvPool p(2, 2);
  append(p, 0, seq(20));
  EXPECT_FALSE(p.reserve(1, 1));
  EXPECT_EQ(p.stats().used, 2);
  EXPECT_TRUE(p.table(1).empty());
}

TEST(KvPool, PrefixHitReusesFullBlocksAndKeepsTheLastToken) {
  KvPool p(16, 3);
  const auto prompt = seq(40);
  append(p, 0, prompt);
  p.release(0);
  // same prompt: 2 full blocks (32 tokens) reusable, the rest recomputed
  EXPECT_EQ(p.attach_prefix(1, prompt), 32);
  EXPECT_EQ(p.stats().used, 2);
  EXPECT_EQ(p.stats().cached, 0);
  // exactly 32 tokens: only the first block, so the last token is recomputed
  EXPECT_EQ(p.attach_prefix(2, std::vector<int32_t>(prompt.begin(), prompt.begin() + 32)), 16);
  EXPECT_EQ(p.stats().used, 2);  // block 0 shared by slots 1 and 2
  p.release(1);
  p.release(2);
  // a different second block: only the first matches
  auto other = prompt;
  other[20] = 999;
  EXPECT_EQ(p.attach_prefix(0, other), 16);
  p.release(0);
  // a different first token: nothing matches (the chain hash covers the whole prefix)
  other = prompt;
  other[0] = 999;
  EXPECT_EQ(p.attach_prefix(0, other), 0);
  p.release(0);
  EXPECT_EQ(p.stats().used, 0);
  EXPECT_GT(p.stats().prefix_hit_tokens, 0);
}

TEST(KvPool, NoPrefixCacheWhenDisabled) {
  KvPool p(16, 2, /*prefix_cache=*/false);
  append(p, 0, seq(40));
  p.release(0);
  EXPECT_EQ(p.stats().cached, 0);
  EXPECT_EQ(p.attach_prefix(1, seq(40)), 0);
}

TEST(KvPool, EvictsLeastRecentlyReleasedCachedBlocks) {
  KvPool p(4, 2);
  append(p, 0, seq(32, 0));    // blocks A0 A1
  p.release(0);                // cached: A1, A0 (tail first)
  append(p, 0, seq(32, 500));  // takes the 2 free blocks
  p.release(0);                // cached: A1 A0 B1 B0
  EXPECT_EQ(p.stats().cached, 4);
  append(p, 1, seq(16, 900));  // evicts the oldest: A1 (A's tail)
  EXPECT_EQ(p.attach_prefix(0, seq(33, 0)), 16);   // A0 still there, A1 gone
  p.release(0);
  EXPECT_EQ(p.attach_prefix(0, seq(33, 500)), 32);  // B intact
  p.release(0);
  p.release(1);
  expect_consistent(p);
  EXPECT_EQ(p.stats().used, 0);
}

TEST(KvPool, TruncateIntoASharedBlockCopiesIt) {
  KvPool p(8, 2);
  const auto prompt = seq(40);
  append(p, 0, prompt);
  const int shared = p.table(0)[1];
  int copies = 0, src = -1, dst = -1;
  auto copy = [&](int s, int d) {
    ++copies;
    src = s;
    dst = d;
  };
  ASSERT_TRUE(p.truncate(0, 20, copy));  // block 1 is registered (full): copy before writing
  EXPECT_EQ(copies, 1);
  EXPECT_EQ(src, shared);
  EXPECT_EQ(p.table(0)[1], dst);
  EXPECT_EQ(p.len(0), 20);
  // the registered block is still a valid cache entry for another slot
  EXPECT_EQ(p.attach_prefix(1, prompt), 32);
  EXPECT_EQ(p.table(1)[1], shared);
  ASSERT_TRUE(p.truncate(1, 32, copy));  // block boundary: no copy
  EXPECT_EQ(copies, 1);
  p.release(0);
  p.release(1);
  EXPECT_EQ(p.stats().used, 0);
  expect_consistent(p);
}
