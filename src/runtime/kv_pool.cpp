#include "runtime/kv_pool.h"

#include <algorithm>
#include <cassert>

namespace awq {

KvPool::KvPool(int n_blocks, int n_slots, bool prefix_cache)
    : prefix_cache_(prefix_cache), blocks_(n_blocks), slots_(n_slots) {
  free_.reserve(n_blocks);
  for (int b = n_blocks - 1; b >= 0; --b) free_.push_back(b);  // pop_back hands out 0, 1, ...
}

int KvPool::blocks_needed(int slot, int n_new) const {
  const Slot& s = slots_[slot];
  return std::max(0, blocks_for((int)s.tokens.size() + n_new) - (int)s.table.size());
}

int KvPool::alloc() {
  int b = -1;
  if (!free_.empty()) {
    b = free_.back();
    free_.pop_back();
  } else if (!lru_.empty()) {  // evict the least recently released cached block
    b = lru_.front();
    lru_.pop_front();
    Block& blk = blocks_[b];
    by_hash_.erase(blk.hash);
    blk.registered = false;
    blk.toks.clear();
  } else {
    return -1;
  }
  blocks_[b].ref = 1;
  return b;
}

void KvPool::unref(int b) {
  Block& blk = blocks_[b];
  assert(blk.ref > 0);
  if (--blk.ref > 0) return;
  if (blk.registered) {
    lru_.push_back(b);
    blk.lru = std::prev(lru_.end());
  } else {
    free_.push_back(b);
  }
}

bool KvPool::reserve(int slot, int n_new) {
  const int need = blocks_needed(slot, n_new);
  if (need > (int)free_.size() + (int)lru_.size()) return false;
  for (int i = 0; i < need; ++i) slots_[slot].table.push_back(alloc());
  return true;
}

uint64_t KvPool::chain_hash(uint64_t parent, std::span<const int32_t> toks) const {
  // FNV-1a over the parent hash and the token ids, then a final avalanche (splitmix64).
  uint64_t h = 0xcbf29ce484222325ull;
  auto mix = [&](uint64_t v) {
    for (int i = 0; i < 8; ++i) {
      h ^= (v >> (8 * i)) & 0xff;
      h *= 0x100000001b3ull;
    }
  };
  mix(parent);
  for (int32_t t : toks) mix((uint32_t)t);
  h ^= h >> 30;
  h *= 0xbf58476d1ce4e5b9ull;
  h ^= h >> 27;
  h *= 0x94d049bb133111ebull;
  h ^= h >> 31;
  return h == 0 ? 1 : h;  // 0 is "no parent"
}

void KvPool::register_full_blocks(Slot& s) {
  const size_t n_full = s.tokens.size() / kBlockTokens;
  while (s.hashes.size() < n_full) {
    const size_t i = s.hashes.size();
    const std::span<const int32_t> toks(s.tokens.data() + i * kBlockTokens, kBlockTokens);
    const uint64_t parent = i ? s.hashes[i - 1] : 0;
    const uint64_t h = chain_hash(parent, toks);
    s.hashes.push_back(h);
    Block& blk = blocks_[s.table[i]];
    if (!prefix_cache_ || blk.registered || by_hash_.count(h)) continue;
    blk.registered = true;
    blk.hash = h;
    blk.parent = parent;
    blk.toks.assign(toks.begin(), toks.end());
    by_hash_[h] = s.table[i];
  }
}

void KvPool::commit(int slot, std::span<const int32_t> toks) {
  Slot& s = slots_[slot];
  s.tokens.insert(s.tokens.end(), toks.begin(), toks.end());
  assert(blocks_for((int)s.tokens.size()) <= (int)s.table.size());
  register_full_blocks(s);
}

int KvPool::attach_prefix(int slot, std::span<const int32_t> prompt) {
  Slot& s = slots_[slot];
  assert(s.tokens.empty() && s.table.empty());
  ++prefix_queries_;
  if (!prefix_cache_ || prompt.size() < 2) return 0;
  const size_t max_blocks = (prompt.size() - 1) / kBlockTokens;  // keep the last token to run
  uint64_t parent = 0;
  for (size_t i = 0; i < max_blocks; ++i) {
    const std::span<const int32_t> toks = prompt.subspan(i * kBlockTokens, kBlockTokens);
    const uint64_t h = chain_hash(parent, toks);
    auto it = by_hash_.find(h);
    if (it == by_hash_.end()) break;
    Block& blk = blocks_[it->second];
    if (blk.parent != parent || !std::equal(toks.begin(), toks.end(), blk.toks.begin())) break;
    if (blk.ref == 0) lru_.erase(blk.lru);
    ++blk.ref;
    s.table.push_back(it->second);
    s.hashes.push_back(h);
    s.tokens.insert(s.tokens.end(), toks.begin(), toks.end());
    parent = h;
  }
  prefix_hit_tokens_ += (int64_t)s.tokens.size();
  return (int)s.tokens.size();
}

bool KvPool::truncate(int slot, int n, const std::function<void(int, int)>& copy) {
  Slot& s = slots_[slot];
  n = std::max(0, n);
  if (n >= (int)s.tokens.size()) return true;
  const int keep_blocks = blocks_for(n);
  while ((int)s.table.size() > keep_blocks) {
    unref(s.table.back());
    s.table.pop_back();
  }
  bool ok = true;
  if (n % kBlockTokens != 0) {
    const int b = s.table.back();
    if (blocks_[b].ref > 1 || blocks_[b].registered) {  // about to be written: make it private
      const int c = alloc();
      if (c < 0) {
        unref(b);  // no block for the copy: drop the partial block, hold fewer tokens
        s.table.pop_back();
        n = (keep_blocks - 1) * kBlockTokens;
        ok = false;
      } else {
        copy(b, c);
        unref(b);
        s.table.back() = c;
      }
    }
  }
  s.tokens.resize(n);
  s.hashes.resize(std::min(s.hashes.size(), (size_t)n / kBlockTokens));
  return ok;
}

void KvPool::release(int slot) {
  Slot& s = slots_[slot];
  // Release in reverse so the chain's tail blocks are evicted before its head.
  for (auto it = s.table.rbegin(); it != s.table.rend(); ++it) unref(*it);
  s = Slot{};
}

KvStats KvPool::stats() const {
  KvStats st;
  st.total = n_blocks();
  st.free = (int)free_.size();
  st.cached = (int)lru_.size();
  st.used = st.total - st.free - st.cached;
  st.prefix_queries = prefix_queries_;
  st.prefix_hit_tokens = prefix_hit_tokens_;
  return st;
}

void KvPool::clear_cache() {
  for (int b : lru_) {
    by_hash_.erase(blocks_[b].hash);
    blocks_[b].registered = false;
    blocks_[b].toks.clear();
    free_.push_back(b);
  }
  lru_.clear();
}

}  // namespace awq
