// Paged KV-cache accounting: one pool of fixed-size blocks (kBlockTokens tokens each), a block
// table per sequence slot, and a prefix cache of full blocks. The pool holds no tensors: the
// Engine keeps the K/V storage indexed by block id, a fake model in the scheduler tests keeps
// none; both share this bookkeeping, so the accounting a test checks is the one serving uses.
//
// Block states (every block is in exactly one):
//   used    ref > 0: in the block table of at least one slot
//   cached  ref == 0, holds a full block registered in the prefix cache (evictable, LRU order)
//   free    ref == 0, not registered
// Allocation takes a free block first, else evicts the least recently released cached block.
//
// Prefix cache: when a slot's block becomes full, it is registered under
//   hash = H(hash of the previous block of the slot (0 for the first), the block's tokens)
// unless that hash is already registered. A new sequence (attach_prefix) takes the longest chain
// of registered blocks matching its prompt, never the whole prompt: at least its last token is
// recomputed so the caller gets logits. Registered blocks are immutable: writes only go to a
// slot's last, partial block, which is never registered nor shared (truncate copies it first).
#pragma once
#include <cstdint>
#include <functional>
#include <list>
#include <span>
#include <unordered_map>
#include <vector>

namespace awq {

inline constexpr int kBlockTokens = 16;

struct KvStats {
  int total = 0;   // blocks in the pool
  int used = 0;    // ref > 0
  int cached = 0;  // ref == 0, reusable by a prefix hit (evictable)
  int free = 0;    // ref == 0, unregistered
  int64_t prefix_queries = 0, prefix_hit_tokens = 0;  // attach_prefix calls, tokens reused
  int available() const { return cached + free; }
};

class KvPool {
 public:
  KvPool() = default;
  KvPool(int n_blocks, int n_slots, bool prefix_cache = true);

  int n_blocks() const { return (int)blocks_.size(); }
  int n_slots() const { return (int)slots_.size(); }
  static int blocks_for(int n_tokens) { return (n_tokens + kBlockTokens - 1) / kBlockTokens; }

  int len(int slot) const { return (int)slots_[slot].tokens.size(); }
  const std::vector<int>& table(int slot) const { return slots_[slot].table; }
  const std::vector<int32_t>& tokens(int slot) const { return slots_[slot].tokens; }

  // New blocks a slot needs to hold n_new more tokens.
  int blocks_needed(int slot, int n_new) const;
  // Allocate the blocks for positions [len, len + n_new). False (nothing changed) if the pool
  // has too few available blocks.
  bool reserve(int slot, int n_new);
  // Append tokens (their K/V are written into the reserved blocks); registers blocks that
  // became full in the prefix cache.
  void commit(int slot, std::span<const int32_t> toks);
  // Slot must be empty. Attach the longest cached chain of full blocks that is a prefix of
  // prompt[0, prompt.size() - 1); returns the number of tokens now held (a multiple of
  // kBlockTokens).
  int attach_prefix(int slot, std::span<const int32_t> prompt);
  // Keep the first n tokens. If the new last block is partial and shared or registered, it is
  // replaced by a private copy: copy(src_block, dst_block) must copy its K/V storage. Returns
  // false (nothing changed) if no block is available for that copy.
  bool truncate(int slot, int n, const std::function<void(int, int)>& copy);
  // Drop the slot's sequence (its registered blocks stay cached).
  void release(int slot);

  KvStats stats() const;
  // Drop every cached (unused, registered) block from the prefix cache.
  void clear_cache();

 private:
  struct Block {
    int ref = 0;
    uint64_t hash = 0;
    bool registered = false;
    std::vector<int32_t> toks;  // registered blocks: their tokens (checked on a hit)
    uint64_t parent = 0;
    std::list<int>::iterator lru;  // position in lru_ when cached
  };
  struct Slot {
    std::vector<int> table;       // block ids
    std::vector<int32_t> tokens;  // tokens committed
    std::vector<uint64_t> hashes; // chain hash of each full block of the table
  };

  int alloc();                 // -1 if none
  void unref(int b);
  uint64_t chain_hash(uint64_t parent, std::span<const int32_t> toks) const;
  void register_full_blocks(Slot& s);

  bool prefix_cache_ = true;
  std::vector<Block> blocks_;
  std::vector<Slot> slots_;
  std::vector<int> free_;                    // ref 0, unregistered
  std::list<int> lru_;                       // ref 0, registered; front = oldest
  std::unordered_map<uint64_t, int> by_hash_;
  int64_t prefix_queries_ = 0, prefix_hit_tokens_ = 0;
};

}  // namespace awq
