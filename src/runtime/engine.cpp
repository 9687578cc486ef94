#include "runtime/engine.h"

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "kernels/vmath.h"
#include "kernels/w4.h"

namespace awq {

void KvCache::allocate(const ModelConfig& cfg, int slots, int ctx) {
  n_layers = cfg.n_layers;
  n_slots = slots;
  n_kv_heads = cfg.n_kv_heads;
  max_ctx = ctx;
  head_dim = cfg.head_dim;
  const size_t n = (size_t)n_layers * n_slots * n_kv_heads * max_ctx * head_dim;
  k.assign(n, 0.0f);
  v.assign(n, 0.0f);
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
  const double gib = 2.0 * m.cfg.n_layers * opt.n_slots * m.cfg.n_kv_heads * (double)opt.max_ctx *
                     m.cfg.head_dim * sizeof(float) / (1 << 30);
  if (gib > 64)
    return make_error("engine: KV cache for ", opt.n_slots, " slots x ", opt.max_ctx,
                      " tokens would need ", gib, " GiB; lower --ctx or the batch size");
  Engine e;
  e.m_ = &m;
  e.cache_.allocate(m.cfg, opt.n_slots, opt.max_ctx);
  e.rope_.build(m.cfg, opt.max_ctx);
  e.pos_.assign(opt.n_slots, 0);
  return e;
}

namespace {

// Attention of `rows` queries of one head against the cached keys/values of one kv head.
// q rows have stride q_stride; query i sits at position p0 + i and sees keys [0, p0 + i].
// kc/vc: [max_ctx][hd] for this (layer, slot, kv head). out rows have stride q_stride.
// window > 0: query i sees only keys (p0 + i - window, p0 + i] (sliding-window layers).
void cached_attention_head(const ModelConfig& cfg, int window, const float* q, int q_stride,
                           int rows, int p0, const float* kc, const float* vc, int hd, float scale,
                           float* out, std::vector<float>& scores) {
  const int S = p0 + rows;  // keys visible to the last row
  scores.resize((size_t)rows * S);
  if (rows >= 8) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, S, hd, scale, q, q_stride, kc, hd,
                0.0f, scores.data(), S);
  } else {
    for (int i = 0; i < rows; ++i) {
      const float* qi = q + (size_t)i * q_stride;
      float* sr = scores.data() + (size_t)i * S;
      const int n_vis = p0 + i + 1;
      for (int j = 0; j < n_vis; ++j) {
        const float* kj = kc + (size_t)j * hd;
        float d = 0.0f;
#pragma omp simd reduction(+ : d)
        for (int e = 0; e < hd; ++e) d += qi[e] * kj[e];
        sr[j] = d * scale;
      }
    }
  }
  for (int i = 0; i < rows; ++i) {
    float* sr = scores.data() + (size_t)i * S;
    attention_softmax(cfg, window, sr, p0 + i, S);
  }
  if (rows >= 8) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, hd, S, 1.0f, scores.data(), S, vc,
                hd, 0.0f, out, q_stride);
  } else {
    for (int i = 0; i < rows; ++i) {
      const float* sr = scores.data() + (size_t)i * S;
      float* o = out + (size_t)i * q_stride;
      std::fill(o, o + hd, 0.0f);
      const int n_vis = p0 + i + 1;
      for (int j = 0; j < n_vis; ++j) {
        const float p = sr[j];
        const float* vj = vc + (size_t)j * hd;
#pragma omp simd
        for (int e = 0; e < hd; ++e) o[e] += p * vj[e];
      }
    }
  }
}

}  // namespace

Status Engine::forward(std::span<const SeqChunk> chunks, std::vector<float>& logits,
                       bool all_logits) {
  const ModelConfig& cfg = m_->cfg;
  if (chunks.empty()) return make_error("engine: forward called with no sequences");
  // Validate everything before touching the cache.
  std::vector<char> used(cache_.n_slots, 0);
  int64_t n_rows = 0;
  for (const SeqChunk& c : chunks) {
    if (c.slot < 0 || c.slot >= cache_.n_slots)
      return make_error("engine: slot ", c.slot, " out of range [0, ", cache_.n_slots, ")");
    if (used[c.slot]) return make_error("engine: slot ", c.slot, " appears twice in one step");
    used[c.slot] = 1;
    if (c.tokens.empty()) return make_error("engine: empty token list for slot ", c.slot);
    if (pos_[c.slot] + (int64_t)c.tokens.size() > cache_.max_ctx)
      return make_error("engine: context full for slot ", c.slot, ": ", pos_[c.slot], " + ",
                        c.tokens.size(), " tokens > ctx ", cache_.max_ctx, " (raise --ctx)");
    for (int32_t t : c.tokens)
      if (t < 0 || t >= cfg.vocab)
        return make_error("engine: token id ", t, " out of range [0, ", cfg.vocab, ")");
    n_rows += (int64_t)c.tokens.size();
  }
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
      positions.push_back(pos_[c.slot] + (int)i);
    }
  }

  std::vector<float> x((size_t)n_rows * H), xn((size_t)n_rows * H), tmp((size_t)n_rows * H);
  std::vector<float> q((size_t)n_rows * qd), k((size_t)n_rows * kvd), v((size_t)n_rows * kvd);
  std::vector<float> attn((size_t)n_rows * qd);
  embed_tokens(*m_, ids.data(), n_rows, x.data());

  // Attention work items: (chunk, head, row block) so long prefills split across threads.
  struct Task {
    int chunk, head, r0, rows;
  };
  constexpr int kRowBlock = 64;
  std::vector<Task> tasks;
  for (int c = 0; c < (int)chunks.size(); ++c) {
    const int T = (int)chunks[c].tokens.size();
    for (int h = 0; h < nh; ++h)
      for (int r0 = 0; r0 < T; r0 += kRowBlock) tasks.push_back({c, h, r0, std::min(kRowBlock, T - r0)});
  }

  for (int l = 0; l < cfg.n_layers; ++l) {
    const BlockWeights& b = m_->blocks[l];
    rms_norm(x.data(), b.attn_norm.data(), n_rows, H, cfg.rms_eps, xn.data());
    linear_forward(b.q, xn.data(), n_rows, q.data());
    linear_forward(b.k, xn.data(), n_rows, k.data());
    linear_forward(b.v, xn.data(), n_rows, v.data());
    qk_norm(cfg, b, q.data(), k.data(), n_rows);
    const bool local_rope = cfg.local_rope(l);
    rope_.apply(q.data(), n_rows, nh, positions.data(), local_rope);
    rope_.apply(k.data(), n_rows, nkv, positions.data(), local_rope);
    const int window = cfg.window_of(l);
    // Append k/v rows to each slot's cache.
    for (int c = 0; c < (int)chunks.size(); ++c) {
      const int slot = chunks[c].slot, T = (int)chunks[c].tokens.size();
      for (int i = 0; i < T; ++i) {
        const size_t r = (size_t)row0[c] + i;
        for (int h = 0; h < nkv; ++h) {
          const size_t off = cache_.head_offset(l, slot, h) + (size_t)(pos_[slot] + i) * hd;
          std::memcpy(cache_.k.data() + off, k.data() + r * kvd + (size_t)h * hd, hd * sizeof(float));
          std::memcpy(cache_.v.data() + off, v.data() + r * kvd + (size_t)h * hd, hd * sizeof(float));
        }
      }
    }
#pragma omp parallel if (tasks.size() > 1)
    {
      std::vector<float> scores;
#pragma omp for schedule(dynamic, 1)
      for (size_t ti = 0; ti < tasks.size(); ++ti) {
        const Task& t = tasks[ti];
        const int slot = chunks[t.chunk].slot;
        const size_t r = (size_t)row0[t.chunk] + t.r0;
        const size_t off = cache_.head_offset(l, slot, t.head / group);
        cached_attention_head(cfg, window, q.data() + r * qd + (size_t)t.head * hd, qd, t.rows,
                              pos_[slot] + t.r0, cache_.k.data() + off, cache_.v.data() + off, hd,
                              scale, attn.data() + r * qd + (size_t)t.head * hd, scores);
      }
    }
    linear_forward(b.o, attn.data(), n_rows, tmp.data());
    add_residual(cfg, b.post_attn_norm, x.data(), tmp.data(), n_rows);
    rms_norm(x.data(), b.mlp_norm.data(), n_rows, H, cfg.rms_eps, xn.data());
    mlp_forward(cfg, b, xn.data(), n_rows, tmp.data());
    add_residual(cfg, b.post_mlp_norm, x.data(), tmp.data(), n_rows);
  }
  for (const SeqChunk& c : chunks) pos_[c.slot] += (int)c.tokens.size();

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
  lm_head_decode(*m_, hn.data(), n_out, logits.data());
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
