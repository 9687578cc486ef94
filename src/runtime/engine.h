// Incremental (KV-cached) and batched inference over a loaded Model.
//
// KV cache: allocated once for n_slots sequences of up to max_ctx tokens. For layer l, sequence
// slot s and kv head h, keys and values of positions [0, max_ctx) are contiguous rows:
//   k[l][s][h][pos][head_dim], v likewise (fp32, keys stored after RoPE).
// A slot holds one sequence; its length (next position) is tracked by the engine.
//
// One forward step runs a list of chunks, each = (slot, tokens appended at the slot's current
// position). The rows of all chunks are stacked: embedding, norms, every linear (q/k/v/o,
// gate/up/down, lm_head) run once over all rows; RoPE uses each row's own position; attention
// runs per chunk over that slot's cache (query i of a chunk at position p attends to [0, p]).
// So a prefill is one chunk of many tokens, and batched decoding is many chunks of one token.
#pragma once
#include <cstdint>
#include <span>
#include <vector>

#include "core/status.h"
#include "model/forward.h"
#include "model/weights.h"

namespace awq {

struct KvCache {
  int n_layers = 0, n_slots = 0, n_kv_heads = 0, max_ctx = 0, head_dim = 0;
  std::vector<float> k, v;  // [n_layers][n_slots][n_kv_heads][max_ctx][head_dim]

  void allocate(const ModelConfig& cfg, int n_slots, int max_ctx);
  size_t head_offset(int layer, int slot, int kv_head) const {
    return ((((size_t)layer * n_slots + slot) * n_kv_heads + kv_head) * max_ctx) * head_dim;
  }
  size_t bytes() const { return (k.size() + v.size()) * sizeof(float); }
};

struct EngineOptions {
  int max_ctx = 2048;  // tokens per sequence slot
  int n_slots = 1;     // sequences that can be held at once
};

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

  int pos(int slot) const { return pos_[slot]; }          // tokens held by the slot
  void reset(int slot) { pos_[slot] = 0; }                 // forget the sequence
  void truncate(int slot, int n) { pos_[slot] = std::min(pos_[slot], std::max(0, n)); }
  int n_slots() const { return cache_.n_slots; }
  int max_ctx() const { return cache_.max_ctx; }
  int vocab() const { return m_->cfg.vocab; }
  const Model& model() const { return *m_; }
  const KvCache& cache() const { return cache_; }

 private:
  const Model* m_ = nullptr;
  KvCache cache_;
  Rope rope_;               // tables for positions [0, max_ctx)
  std::vector<int> pos_;    // per slot
};

// Weight bytes read per decode step (one token of one sequence): packed W4 bytes or fp32
// bytes of every block linear, norms, the final norm, one embedding row, and the lm_head in the
// format decode reads (Model::lm_head_q8 codes + scales, lm_head_f16, or fp32).
size_t weight_bytes_per_token(const Model& m);

}  // namespace awq
