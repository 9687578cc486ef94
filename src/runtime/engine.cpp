#include "runtime/engine.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <type_traits>

#include "core/chunk_pool.h"
#include "kernels/q8_matmul.h"
#include "kernels/vmath.h"
#include "kernels/w4.h"
#include "runtime/attention.h"

namespace awq {

size_t kv_block_bytes(const ModelConfig& cfg, bool f16) {
  return 2 * (size_t)cfg.n_layers * cfg.n_kv_heads * kBlockTokens * cfg.head_dim *
         (f16 ? sizeof(uint16_t) : sizeof(float));
}

Expected<Engine> Engine::create(const Model& m, const EngineOptions& opt) {
  if (opt.n_slots < 1 || opt.n_slots > 4096)
    return make_error("engine: n_slots must be in [1, 4096], got ", opt.n_slots);
  if (opt.max_ctx < 1)
    return make_error("engine: context size must be at least 1 token, got ", opt.max_ctx);
  if (m.blocks.size() != (size_t)m.cfg.n_layers || m.cfg.n_heads <= 0 || m.cfg.n_kv_heads <= 0 ||
      m.cfg.n_heads % m.cfg.n_kv_heads != 0)
    return make_error("engine: model is not loaded or has inconsistent heads (n_heads ",
                      m.cfg.n_heads, ", n_kv_heads ", m.cfg.n_kv_heads, ")");
  if (opt.kv_blocks < 0) return make_error("engine: kv_blocks must be >= 0, got ", opt.kv_blocks);
  const int64_t n_blocks =
      opt.kv_blocks ? opt.kv_blocks : (int64_t)opt.n_slots * KvPool::blocks_for(opt.max_ctx);
  const double gib = (double)n_blocks * kv_block_bytes(m.cfg, opt.kv_f16) / (1 << 30);
  if (gib > 64 || n_blocks > (1 << 30))
    return make_error("engine: KV cache of ", n_blocks, " blocks (", opt.n_slots, " slots x ",
                      opt.max_ctx, " tokens) would need ", gib,
                      " GiB; lower --ctx, the batch size or the KV budget");
  Engine e;
  e.m_ = &m;
  e.max_ctx_ = opt.max_ctx;
  e.n_layers_ = m.cfg.n_layers;
  e.n_kv_heads_ = m.cfg.n_kv_heads;
  e.head_dim_ = m.cfg.head_dim;
  e.batch_invariant_ = opt.batch_invariant;
  e.pool_ = KvPool((int)n_blocks, opt.n_slots, opt.prefix_cache);
  e.kv_f16_ = opt.kv_f16;
  const size_t n = e.kv_offset((int)n_blocks, 0, 0);  // elements of K (and of V)
  if (opt.kv_f16) {
    e.k16_.assign_zero(n);
    e.v16_.assign_zero(n);
  } else {
    e.k_.assign_zero(n);
    e.v_.assign_zero(n);
  }
  e.rope_.build(m.cfg, opt.max_ctx);
  return e;
}

void Engine::truncate(int slot, int n) {
  const size_t per_block = (size_t)n_layers_ * n_kv_heads_ * kBlockTokens * head_dim_;
  pool_.truncate(slot, n, [&](int src, int dst) {
    with_kv([&](auto* K, auto* V) {
      std::memcpy(K + kv_offset(dst, 0, 0), K + kv_offset(src, 0, 0), per_block * sizeof(*K));
      std::memcpy(V + kv_offset(dst, 0, 0), V + kv_offset(src, 0, 0), per_block * sizeof(*V));
    });
  });
}

Status Engine::forward(std::span<const SeqChunk> chunks, std::vector<float>& logits,
                       bool all_logits) {
  const ModelConfig& cfg = m_->cfg;
  if (chunks.empty()) return make_error("engine: forward called with no sequences");
  // Validate everything before touching the cache.
  kv_full_ = false;
  const int n_slots = pool_.n_slots();
  std::vector<char> used(n_slots, 0);
  int64_t blocks_needed = 0;
  int64_t n_rows = 0;
  for (const SeqChunk& c : chunks) {
    if (c.slot < 0 || c.slot >= n_slots)
      return make_error("engine: slot ", c.slot, " out of range [0, ", n_slots, ")");
    if (used[c.slot]) return make_error("engine: slot ", c.slot, " appears twice in one step");
    used[c.slot] = 1;
    if (c.tokens.empty()) return make_error("engine: empty token list for slot ", c.slot);
    if (pool_.len(c.slot) + (int64_t)c.tokens.size() > max_ctx_)
      return make_error("engine: context full for slot ", c.slot, ": ", pool_.len(c.slot), " + ",
                        c.tokens.size(), " tokens > ctx ", max_ctx_, " (raise --ctx)");
    for (int32_t t : c.tokens)
      if (t < 0 || t >= cfg.vocab)
        return make_error("engine: token id ", t, " out of range [0, ", cfg.vocab, ")");
    n_rows += (int64_t)c.tokens.size();
    blocks_needed += pool_.blocks_needed(c.slot, (int)c.tokens.size());
  }
  if (blocks_needed > pool_.stats().available()) {
    kv_full_ = true;
    return make_error("engine: KV cache full: the step needs ", blocks_needed, " more blocks, ",
                      pool_.stats().available(), " of ", pool_.n_blocks(),
                      " are free (raise the KV budget)");
  }
  for (const SeqChunk& c : chunks) pool_.reserve(c.slot, (int)c.tokens.size());
  const int H = cfg.hidden, hd = cfg.head_dim, nh = cfg.n_heads, nkv = cfg.n_kv_heads;
  const int qd = nh * hd, kvd = nkv * hd, group = nh / nkv;
  const float scale = attention_scale(cfg);

  // Stacked rows: token ids, positions, and where each chunk starts.
  std::vector<int32_t> ids;
  std::vector<int> positions, row0;
  ids.reserve(n_rows);
  positions.reserve(n_rows);
  for (const SeqChunk& c : chunks) {
    row0.push_back((int)ids.size());
    for (size_t i = 0; i < c.tokens.size(); ++i) {
      ids.push_back(c.tokens[i]);
      positions.push_back(pool_.len(c.slot) + (int)i);
    }
  }

  // Step activations in buffers kept across steps (no page faults or zeroing per step); every
  // element read below is written first in this step.
  std::vector<float>&x = act_.x, &xn = act_.xn, &tmp = act_.tmp, &q = act_.q, &k = act_.k,
                     &v = act_.v, &attn = act_.attn;
  for (auto [buf, n] : {std::pair{&x, H}, {&xn, H}, {&tmp, H}, {&q, qd}, {&k, kvd}, {&v, kvd},
                        {&attn, qd}})
    if (buf->size() < (size_t)n_rows * n) buf->resize((size_t)n_rows * n);
  embed_tokens(*m_, ids.data(), n_rows, x.data());

  // Attention work items: (chunk, kv head, row block) so long prefills split across threads;
  // each gathers its kv head's cached keys/values once for the query heads of its group.
  struct Task {
    int chunk, kv_head, r0, rows;
  };
  constexpr int kRowBlock = 64;
  std::vector<Task> tasks;
  bool any_gemm = false;  // a task that takes the BLAS path (see below)
  for (int c = 0; c < (int)chunks.size(); ++c) {
    const int T = (int)chunks[c].tokens.size();
    for (int h = 0; h < nkv; ++h)
      for (int r0 = 0; r0 < T; r0 += kRowBlock) {
        tasks.push_back({c, h, r0, std::min(kRowBlock, T - r0)});
        any_gemm |= !batch_invariant_ && tasks.back().rows >= 8;
      }
  }

  for (int l = 0; l < cfg.n_layers; ++l) {
    const BlockWeights& b = m_->blocks[l];
    rms_norm(x.data(), b.attn_norm.data(), n_rows, H, cfg.rms_eps, xn.data());
    linear_forward_multi({{&b.q, q.data()}, {&b.k, k.data()}, {&b.v, v.data()}}, xn.data(), n_rows);
    qk_norm(cfg, b, q.data(), k.data(), n_rows);
    const bool local_rope = cfg.local_rope(l);
    rope_.apply(q.data(), n_rows, nh, positions.data(), local_rope);
    rope_.apply(k.data(), n_rows, nkv, positions.data(), local_rope);
    const int window = cfg.window_of(l);
    // Append k/v rows to each slot's blocks, one (chunk, kv head) per work item: a transposed K
    // row is a 16-key column, one cache line per dimension, so the writes are worth both cores.
    parallel_chunks((int)chunks.size() * nkv, omp_get_max_threads(), [&](int item) {
      const int c = item / nkv, h = item % nkv;
      const int slot = chunks[c].slot, T = (int)chunks[c].tokens.size();
      const std::vector<int>& table = pool_.table(slot);
      for (int i = 0; i < T; ++i) {
        const size_t r = (size_t)row0[c] + i;
        const int p = pool_.len(slot) + i;
        const size_t page = kv_offset(table[p / kBlockTokens], l, h);
        with_kv([&](auto* K, auto* V) {
          kv_put_k(K + page, p % kBlockTokens, k.data() + r * kvd + (size_t)h * hd, hd);
          kv_put_v(V + page, p % kBlockTokens, v.data() + r * kvd + (size_t)h * hd, hd);
        });
      }
    });
    auto run_task = [&](int ti) {
      {
        thread_local std::vector<float> scores, kc, vc;
        const Task& t = tasks[ti];
        const int slot = chunks[t.chunk].slot;
        const size_t r = (size_t)row0[t.chunk] + t.r0;
        const int p0 = pool_.len(slot) + t.r0;  // position of the task's first query
        const int S = p0 + t.rows;              // keys the task's last query sees
        const std::vector<int>& table = pool_.table(slot);
        const bool gemm = !batch_invariant_ && t.rows >= 8;
        const size_t base = kv_offset(0, l, t.kv_head);
        const auto heads = [&](const auto& kv) {
          const size_t h0 = (size_t)t.kv_head * group * hd;  // the group's first query head
          cached_attention_group(cfg, window, q.data() + r * qd + h0, qd, group, t.rows, p0, kv, scale,
                                 attn.data() + r * qd + h0, scores, gemm);
        };
        with_kv([&](auto* K, auto* V) {
          if (gemm) {
            // BLAS wants contiguous fp32 rows: gather positions [0, S) from the slot's blocks.
            // The row-wise path (decode) reads the blocks in place instead.
            kc.resize((size_t)S * hd);
            vc.resize((size_t)S * hd);
            for (int p = 0; p < S; p += kBlockTokens) {
              const size_t off = kv_offset(table[p / kBlockTokens], l, t.kv_head);
              kv_gather(kc.data() + (size_t)p * hd, vc.data() + (size_t)p * hd, K + off, V + off,
                        std::min(kBlockTokens, S - p), hd);
            }
            heads(KvRowsT<float>{kc.data(), vc.data(), nullptr, 0, hd});
          } else {
            using T = std::remove_const_t<std::remove_pointer_t<decltype(K)>>;
            heads(KvRowsT<T>{K + base, V + base, table.data(), kv_offset(1, 0, 0), hd});
          }
        });
      }
    };
    if (any_gemm) {  // BLAS inside: an OpenMP team (OpenBLAS then runs single-threaded in it)
#pragma omp parallel for schedule(dynamic, 1) if (tasks.size() > 1)
      for (int ti = 0; ti < (int)tasks.size(); ++ti) run_task(ti);
    } else {  // row-wise (decode, batch-invariant): claimed chunks (core/chunk_pool.h)
      parallel_chunks((int)tasks.size(), omp_get_max_threads(), run_task);
    }
    linear_forward(b.o, attn.data(), n_rows, tmp.data());
    add_residual(cfg, b.post_attn_norm, x.data(), tmp.data(), n_rows);
    rms_norm(x.data(), b.mlp_norm.data(), n_rows, H, cfg.rms_eps, xn.data());
    mlp_forward(cfg, b, xn.data(), n_rows, tmp.data());
    add_residual(cfg, b.post_mlp_norm, x.data(), tmp.data(), n_rows);
  }
  for (const SeqChunk& c : chunks) pool_.commit(c.slot, c.tokens);

  // Final norm + lm_head over the rows whose logits are wanted.
  std::vector<float> sel;
  const float* hrows = x.data();
  int64_t n_out = n_rows;
  if (!all_logits) {
    n_out = (int64_t)chunks.size();
    sel.resize((size_t)n_out * H);
    for (size_t c = 0; c < chunks.size(); ++c) {
      const size_t last = (size_t)row0[c] + chunks[c].tokens.size() - 1;
      std::memcpy(sel.data() + c * H, x.data() + last * H, H * sizeof(float));
    }
    hrows = sel.data();
  }
  std::vector<float> hn((size_t)n_out * H);
  rms_norm(hrows, m_->final_norm.data(), n_out, H, cfg.rms_eps, hn.data());
  logits.resize((size_t)n_out * cfg.vocab);
  if (batch_invariant_ && !m_->lm_head_q8.empty() && cfg.final_softcap <= 0.0f) {
    // the 8-bit head's rows are independent of each other (bit-identical for any M): one pass
    // over its weights for every row, the same logits lm_head_decode gives in groups of 16
    q8_matmul(m_->lm_head_q8, hn.data(), (int)n_out, logits.data());
  } else {
    // batch-invariant: groups of <= 16 rows keep the lm_head on its decode path (8-bit head)
    const int64_t group_rows = batch_invariant_ ? 16 : n_out;
    for (int64_t r0 = 0; r0 < n_out; r0 += group_rows)
      lm_head_decode(*m_, hn.data() + (size_t)r0 * H, std::min(group_rows, n_out - r0),
                     logits.data() + (size_t)r0 * cfg.vocab);
  }
  return Status::Ok();
}

Status Engine::prefill(int slot, std::span<const int32_t> tokens, std::vector<float>& last_logits) {
  const SeqChunk c{slot, tokens};
  return forward(std::span<const SeqChunk>(&c, 1), last_logits, false);
}

Status Engine::decode(std::span<const int> slots, std::span<const int32_t> tokens,
                      std::vector<float>& logits) {
  if (slots.size() != tokens.size())
    return make_error("engine: decode got ", slots.size(), " slots but ", tokens.size(), " tokens");
  std::vector<SeqChunk> chunks(slots.size());
  for (size_t i = 0; i < slots.size(); ++i) chunks[i] = {slots[i], tokens.subspan(i, 1)};
  return forward(chunks, logits, false);
}

size_t weight_bytes_per_token(const Model& m) {
  auto lin = [](const Linear& l) -> size_t {
    size_t b = l.bias.size() * sizeof(float);
    if (l.weight.empty() && l.w4) return b + l.w4->packed_bytes();
    return b + l.weight.size() * sizeof(float);
  };
  size_t total = 0;
  for (const BlockWeights& b : m.blocks) {
    total += (b.attn_norm.size() + b.mlp_norm.size() + b.post_attn_norm.size() +
              b.post_mlp_norm.size() + b.q_norm.size() + b.k_norm.size()) * sizeof(float);
    for (const Linear* l : {&b.q, &b.k, &b.v, &b.o, &b.gate, &b.up, &b.down}) total += lin(*l);
    if (!b.experts.empty()) {  // MoE: the router and, per token, top_k experts' weights
      size_t ex = 0;
      for (const ExpertWeights& e : b.experts) ex += lin(e.gate) + lin(e.up) + lin(e.down);
      total += lin(b.router) + ex / b.experts.size() * (size_t)m.cfg.top_k;
    }
  }
  total += m.final_norm.size() * sizeof(float);
  total += (size_t)m.cfg.hidden * sizeof(float);                      // one embedding row
  // lm_head (tied or not) in the format decode reads: int8 codes + fp16 scales, fp16, or fp32
  if (!m.lm_head_q8.empty())
    total += m.lm_head_q8.bytes();
  else
    total += (size_t)m.cfg.vocab * m.cfg.hidden *
             (m.lm_head_f16.empty() ? sizeof(float) : sizeof(uint16_t));
  return total;
}

}  // namespace awq
