// Incremental (KV-cached) and batched inference over a loaded Model.
//
// KV cache: paged (runtime/kv_pool.h). One pool of blocks of kBlockTokens positions, sized by
// EngineOptions::kv_blocks; each sequence slot has a block table. Storage per block b, layer l,
// kv head h: keys (after RoPE) and values of the block's positions are contiguous rows:
//   k[b][l][h][kBlockTokens][head_dim], v likewise (fp32).
// Attention gathers a slot's keys/values for one (layer, kv head) into a contiguous scratch and
// runs the dense kernels over it. Full blocks are shared between slots through the prefix cache
// (attach_prefix); a sequence's length (next position) is its committed token count.
#pragma once
#include <cstdint>
#include <span>
#include <vector>

#include "core/status.h"
#include "core/huge_buffer.h"
#include "runtime/kv_pool.h"
#include "model/forward.h"
#include "model/weights.h"

namespace awq {

struct EngineOptions {
  int max_ctx = 2048;  // tokens per sequence slot
  int n_slots = 1;     // sequences that can be held at once
  int kv_blocks = 0;   // blocks in the KV pool; 0 = enough for every slot at max_ctx
  bool prefix_cache = true;  // register full blocks for reuse by attach_prefix
  // Compute every row the same way whatever else is in the step (how many rows, how a prompt
  // is chunked, what is cached): attention by the per-row path and the lm_head in groups of at
  // most 16 rows. With w4_set_decode_max_m(INT_MAX) (W4 linears on the row-wise decode kernel
  // for any M) a sequence's tokens then do not depend on batching. Used by `awq serve`.
  bool batch_invariant = false;
  // K/V stored as IEEE fp16 (round to nearest even), read back to fp32 in attention: half the
  // bytes per block (so twice the tokens for one budget) and half the bytes attention streams
  // per decode step. Off: fp32, what the references compute.
  bool kv_f16 = false;
};

// Bytes of K/V storage one block of kBlockTokens positions takes for this model.
size_t kv_block_bytes(const ModelConfig& cfg, bool f16 = false);

// Tokens appended to one sequence slot in a forward step.
struct SeqChunk {
  int slot = 0;
  std::span<const int32_t> tokens;
};

class Engine {
 public:
  // The model must outlive the engine. Errors: max_ctx/n_slots out of range.
  static Expected<Engine> create(const Model& m, const EngineOptions& opt);

  // Run the chunks (distinct slots, each non-empty). Logits [vocab] per output row go to
  // `logits`: one row per chunk (its last token) in chunk order, or, if all_logits, one row
  // per token of every chunk in stacked order. Errors (nothing is modified): a bad slot, a
  // repeated slot, an empty chunk, a token id out of range, or the slot's context overflowing.
  Status forward(std::span<const SeqChunk> chunks, std::vector<float>& logits,
                 bool all_logits = false);

  // Convenience: prefill one slot (logits of its last token) / decode one token for each slot.
  Status prefill(int slot, std::span<const int32_t> tokens, std::vector<float>& last_logits);
  Status decode(std::span<const int> slots, std::span<const int32_t> tokens,
                std::vector<float>& logits);

  int pos(int slot) const { return pool_.len(slot); }     // tokens held by the slot
  void reset(int slot) { pool_.release(slot); }            // forget the sequence (frees blocks)
  // Keep the first min(pos, n) tokens (fewer, at a block boundary, in the rare case that no
  // block is free for the copy of a shared partial block: check pos()).
  void truncate(int slot, int n);
  // Empty slot: reuse the longest cached prefix of full blocks of `prompt` (never all of it);
  // returns the tokens now held.
  int attach_prefix(int slot, std::span<const int32_t> prompt) {
    return pool_.attach_prefix(slot, prompt);
  }
  int n_slots() const { return pool_.n_slots(); }
  int max_ctx() const { return max_ctx_; }
  int vocab() const { return m_->cfg.vocab; }
  const Model& model() const { return *m_; }
  const KvPool& kv() const { return pool_; }
  KvStats kv_stats() const { return pool_.stats(); }
  bool kv_full() const { return kv_full_; }  // the last forward failed for lack of KV blocks
  size_t kv_bytes() const {
    return (k_.size() + v_.size()) * sizeof(float) + (k16_.size() + v16_.size()) * sizeof(uint16_t);
  }

 private:
  // f(K, V) with the cache's element pointers: float* (fp32) or uint16_t* (fp16 bits).
  template <typename F>
  decltype(auto) with_kv(F&& f) {
    return kv_f16_ ? f(k16_.data(), v16_.data()) : f(k_.data(), v_.data());
  }
  size_t kv_offset(int block, int layer, int kv_head) const {
    return (((size_t)block * n_layers_ + layer) * n_kv_heads_ + kv_head) * kBlockTokens * head_dim_;
  }
  const Model* m_ = nullptr;
  int max_ctx_ = 0, n_layers_ = 0, n_kv_heads_ = 0, head_dim_ = 0;
  KvPool pool_;
  // [kv_blocks][n_layers][n_kv_heads] pages of kBlockTokens x head_dim, on huge pages
  // (core/huge_buffer.h); K pages are stored transposed (runtime/attention.h)
  HugeBuffer<float> k_, v_;
  HugeBuffer<uint16_t> k16_, v16_;  // the same layout in fp16 bits (kv_f16); one pair is empty
  bool kv_f16_ = false;
  bool kv_full_ = false;
  bool batch_invariant_ = false;
  Rope rope_;               // tables for positions [0, max_ctx)
  struct StepBuffers {
    std::vector<float> x, xn, tmp, q, k, v, attn;
  } act_;  // forward's activations, grown to the largest step so far
};

// Weight bytes read per decode step (one token of one sequence): packed W4 bytes or fp32
// bytes of every block linear (MoE: the router and top_k experts), norms, the final norm, one
// embedding row, and the lm_head in the format decode reads (Model::lm_head_q8 codes + scales, lm_head_f16, or fp32).
size_t weight_bytes_per_token(const Model& m);

}  // namespace awq
