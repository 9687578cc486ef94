#include "model/forward.h"

#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/cancel.h"
#include "core/flops.h"
#include "kernels/f16_matmul.h"
#include "kernels/q8_matmul.h"
#include "kernels/vmath.h"
#include "kernels/w4.h"

namespace awq {

void linear_forward(const Linear& l, const float* x, int64_t M, float* y) {
  if (M <= 0) return;
  if (l.weight.empty() && l.w4) {
    w4_matmul(*l.w4, x, (int)M, y, l.bias.empty() ? nullptr : l.bias.data());
    return;
  }
  // y = x · W^T
  count_flops(2.0 * (double)M * l.out * l.in);
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)M, l.out, l.in, 1.0f, x, l.in,
              l.weight.data(), l.in, 0.0f, y, l.out);
  if (!l.bias.empty()) {
#pragma omp parallel for if (M * l.out > 65536)
    for (int64_t i = 0; i < M; ++i)
      for (int j = 0; j < l.out; ++j) y[i * l.out + j] += l.bias[j];
  }
}

namespace {
// Activation buffers of the layer functions, reused across calls on this thread: a fresh
// std::vector per call costs, for a few hundred KiB and up, an mmap, a page fault per 4 KiB and
// zeroing on the calling thread only (measured: ~5 % of an `awq serve` step at 32 sequences
// spent in page faults, clear_page and memset while the other thread waited). Requests above
// kMaxReuse floats (quantizer calibration batches) get a buffer of their own, freed after use,
// so no large buffer outlives its call.
constexpr size_t kMaxReuse = size_t(4) << 20;  // 16 MiB of floats per slot
enum ScratchSlot { kMlpGate, kMlpUp, kAttnQ, kAttnK, kAttnV, kAttnOut, kNumSlots };
float* scratch(ScratchSlot slot, size_t n, std::vector<float>& own) {
  thread_local std::vector<float> bufs[kNumSlots];
  std::vector<float>& b = n <= kMaxReuse ? bufs[slot] : own;
  if (b.size() < n) b.resize(n);
  return b.data();
}
}  // namespace

void linear_forward_multi(std::initializer_list<std::pair<const Linear*, float*>> ls, const float* x,
                          int64_t M) {
  W4Out outs[8];
  int n = 0;
  bool all_w4 = ls.size() <= 8;
  for (const auto& [l, y] : ls) {
    if (!all_w4 || !l->weight.empty() || !l->w4) {
      all_w4 = false;
      break;
    }
    outs[n++] = {l->w4.get(), y, l->bias.empty() ? nullptr : l->bias.data()};
  }
  if (all_w4 && M > 0) {
    w4_matmul_multi(outs, n, x, (int)M);
    return;
  }
  for (const auto& [l, y] : ls) linear_forward(*l, x, M, y);
}

void rms_norm(const float* x, const float* w, int64_t n_tok, int dim, float eps, float* y) {
#pragma omp parallel for if (n_tok > 16)
  for (int64_t t = 0; t < n_tok; ++t) {
    const float* xr = x + t * dim;
    float* yr = y + t * dim;
    // Sum of squares in 16 interleaved partial sums, added pairwise: the compiler vectorizes
    // it (one sequential chain of 576 dependent adds was ~2 % of a serve profile at 32
    // streams); the same order for every row and batch.
    float part[16] = {};
    int i = 0;
    for (; i + 16 <= dim; i += 16)
      for (int j = 0; j < 16; ++j) part[j] += xr[i + j] * xr[i + j];
    for (; i < dim; ++i) part[i % 16] += xr[i] * xr[i];
    for (int h = 8; h >= 1; h /= 2)
      for (int j = 0; j < h; ++j) part[j] += part[j + h];
    const float ss = part[0];
    const float inv = 1.0f / std::sqrt(ss / (float)dim + eps);
    for (int i = 0; i < dim; ++i) yr[i] = w[i] * (xr[i] * inv);
  }
}

namespace {

void build_tables(float theta, const RopeScaling& rs, int head_dim, int n_pos,
                  std::vector<float>& cos, std::vector<float>& sin) {
  const int half = head_dim / 2;
  // inv_freq as HF computes it: 1 / theta^(2i/d) in fp32
  std::vector<float> inv_freq(half);
  for (int i = 0; i < half; ++i) {
    const float expo = (float)(2 * i) / (float)head_dim;
    inv_freq[i] = 1.0f / std::pow(theta, expo);
  }
  if (rs.kind == RopeScaling::Kind::Linear) {
    for (auto& f : inv_freq) f /= rs.factor;
  } else if (rs.kind == RopeScaling::Kind::Llama3) {
    const float low_wavelen = (float)rs.original_max_position / rs.low_freq_factor;
    const float high_wavelen = (float)rs.original_max_position / rs.high_freq_factor;
    for (auto& f : inv_freq) {
      const float wavelen = 2.0f * (float)M_PI / f;
      if (wavelen > low_wavelen) {
        f = f / rs.factor;
      } else if (wavelen >= high_wavelen) {
        const float smooth = ((float)rs.original_max_position / wavelen - rs.low_freq_factor) /
                             (rs.high_freq_factor - rs.low_freq_factor);
        f = (1.0f - smooth) * f / rs.factor + smooth * f;
      }
    }
  } else if (rs.kind == RopeScaling::Kind::Yarn) {
    // Transformers' _compute_yarn_parameters: correction range in dims (double math, as
    // Python's), the ramp and the blend in fp32 (torch float32 tensors).
    const double dim = head_dim, base = theta, orig = rs.original_max_position;
    auto corr_dim = [&](double rot) {
      return dim * std::log(orig / (rot * 2.0 * M_PI)) / (2.0 * std::log(base));
    };
    double lo = corr_dim(rs.beta_fast), hi = corr_dim(rs.beta_slow);
    if (rs.truncate) lo = std::floor(lo), hi = std::ceil(hi);
    lo = std::max(lo, 0.0);
    hi = std::min(hi, dim - 1);
    if (lo == hi) hi += 0.001;  // the reference's guard against a zero-width ramp
    for (int i = 0; i < half; ++i) {
      const float pos_freq = std::pow(theta, (float)(2 * i) / (float)head_dim);  // pos_freqs
      const float extra = 1.0f / pos_freq, inter = 1.0f / (rs.factor * pos_freq);
      const float ramp = std::clamp(((float)i - (float)lo) / (float)(hi - lo), 0.0f, 1.0f);
      const float extra_factor = 1.0f - ramp;
      inv_freq[i] = inter * (1.0f - extra_factor) + extra * extra_factor;
    }
  }
  const float att = rs.kind == RopeScaling::Kind::Yarn ? rs.attention_factor : 1.0f;
  cos.resize((size_t)n_pos * half);
  sin.resize((size_t)n_pos * half);
  for (int p = 0; p < n_pos; ++p)
    for (int i = 0; i < half; ++i) {
      const float a = (float)p * inv_freq[i];  // fp32 product, as the reference
      cos[(size_t)p * half + i] = (float)std::cos((double)a) * att;
      sin[(size_t)p * half + i] = (float)std::sin((double)a) * att;
    }
}

}  // namespace

void Rope::build(const ModelConfig& cfg, int n_pos) {
  head_dim = cfg.head_dim;
  rot_dim = cfg.rope_dims();
  build_tables(cfg.rope_theta, cfg.rope_scaling, rot_dim, n_pos, cos, sin);
  cos_local.clear();
  sin_local.clear();
  if (cfg.rope_local_theta > 0.0f)
    build_tables(cfg.rope_local_theta, RopeScaling{}, rot_dim, n_pos, cos_local, sin_local);
}

void Rope::apply(float* x, int64_t n_rows, int n_heads, const int* positions, bool local) const {
  const int half = (rot_dim > 0 ? rot_dim : head_dim) / 2;
  const float* ct = local && !cos_local.empty() ? cos_local.data() : cos.data();
  const float* st = local && !sin_local.empty() ? sin_local.data() : sin.data();
#pragma omp parallel for if (n_rows > 16)
  for (int64_t t = 0; t < n_rows; ++t) {
    const float* c = ct + (size_t)positions[t] * half;
    const float* s = st + (size_t)positions[t] * half;
    for (int h = 0; h < n_heads; ++h) {
      float* v = x + (t * n_heads + h) * head_dim;
      for (int i = 0; i < half; ++i) {
        const float a = v[i], b = v[i + half];
        v[i] = a * c[i] - b * s[i];
        v[i + half] = b * c[i] + a * s[i];
      }
    }
  }
}

namespace {

// Causal attention for one sequence: q [T][n_heads*hd], k/v [S][n_kv*hd] where query t sits
// at position pos0 + t and may attend keys [0, pos0 + t]. out [T][n_heads*hd].
void causal_attention(const ModelConfig& cfg, const float* q, const float* k, const float* v,
                      int T, int pos0, int window, float* out) {
  const int hd = cfg.head_dim, nh = cfg.n_heads, nkv = cfg.n_kv_heads;
  const int group = nh / nkv;
  const float scale = attention_scale(cfg);
  constexpr int kChunk = 64;
  const int n_chunks = (T + kChunk - 1) / kChunk;
  const int S_max = pos0 + T;
#pragma omp parallel
  {
    std::vector<float> scores((size_t)kChunk * S_max);
#pragma omp for schedule(dynamic, 1) collapse(2)
    for (int h = 0; h < nh; ++h)
      for (int c = 0; c < n_chunks; ++c) {
        const int r0 = c * kChunk, r1 = std::min(T, r0 + kChunk), rows = r1 - r0;
        const int S = pos0 + r1;  // keys visible to the last row of the chunk
        const int kvh = h / group;
        count_flops(4.0 * rows * S * hd);  // scores and scores · V
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, S, hd, scale,
                    q + (size_t)r0 * nh * hd + h * hd, nh * hd, k + kvh * hd, nkv * hd, 0.0f,
                    scores.data(), S);
        for (int i = 0; i < rows; ++i) {
          float* row = scores.data() + (size_t)i * S;
          attention_softmax(cfg, window, row, pos0 + r0 + i, S);
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, hd, S, 1.0f, scores.data(), S,
                    v + kvh * hd, nkv * hd, 0.0f, out + (size_t)r0 * nh * hd + h * hd, nh * hd);
      }
  }
}

}  // namespace

float attention_scale(const ModelConfig& cfg) {
  return cfg.attn_scale > 0.0f ? cfg.attn_scale : 1.0f / std::sqrt((float)cfg.head_dim);
}

void attention_softmax(const ModelConfig& cfg, int window, float* row, int q_pos, int S) {
  const int lo = window > 0 ? std::max(0, q_pos - window + 1) : 0;
  if (cfg.attn_softcap > 0.0f) {
    const float cap = cfg.attn_softcap;
    for (int j = lo; j <= q_pos; ++j) row[j] = std::tanh(row[j] / cap) * cap;
  }
  if (lo == 0) {
    softmax_row(row, q_pos + 1, S);
    return;
  }
  std::fill(row, row + lo, 0.0f);
  softmax_row(row + lo, q_pos + 1 - lo, S - lo);
}

void qk_norm(const ModelConfig& cfg, const BlockWeights& b, float* q, float* k, int64_t n_rows) {
  if (!b.q_norm.empty())
    rms_norm(q, b.q_norm.data(), n_rows * cfg.n_heads, cfg.head_dim, cfg.rms_eps, q);
  if (!b.k_norm.empty())
    rms_norm(k, b.k_norm.data(), n_rows * cfg.n_kv_heads, cfg.head_dim, cfg.rms_eps, k);
}

void add_residual(const ModelConfig& cfg, const std::vector<float>& post_norm, float* x, float* y,
                  int64_t n_rows) {
  const int H = cfg.hidden;
  if (!post_norm.empty()) rms_norm(y, post_norm.data(), n_rows, H, cfg.rms_eps, y);
  const int64_t n = n_rows * H;
#pragma omp parallel for if (n > 65536)
  for (int64_t i = 0; i < n; ++i) x[i] += y[i];
}

void attention_forward(const ModelConfig& cfg, const BlockWeights& b, const Rope& rope,
                       const float* xn, int n_seq, int T, float* out, float* o_in) {
  const int64_t n_tok = (int64_t)n_seq * T;
  const int qd = cfg.n_heads * cfg.head_dim, kvd = cfg.n_kv_heads * cfg.head_dim;
  std::vector<float> q_own, k_own, v_own;
  float* q = scratch(kAttnQ, (size_t)n_tok * qd, q_own);
  float* k = scratch(kAttnK, (size_t)n_tok * kvd, k_own);
  float* v = scratch(kAttnV, (size_t)n_tok * kvd, v_own);
  linear_forward_multi({{&b.q, q}, {&b.k, k}, {&b.v, v}}, xn, n_tok);
  std::vector<int> pos((size_t)n_tok);
  for (int64_t t = 0; t < n_tok; ++t) pos[t] = (int)(t % T);
  qk_norm(cfg, b, q, k, n_tok);
  const bool local = cfg.local_rope(b.layer);
  rope.apply(q, n_tok, cfg.n_heads, pos.data(), local);
  rope.apply(k, n_tok, cfg.n_kv_heads, pos.data(), local);
  std::vector<float> attn_own;
  float* attn = o_in ? o_in : scratch(kAttnOut, (size_t)n_tok * qd, attn_own);
  for (int s = 0; s < n_seq; ++s) {
    const size_t t0 = (size_t)s * T;
    causal_attention(cfg, q + t0 * qd, k + t0 * kvd, v + t0 * kvd, T, 0,
                     cfg.window_of(b.layer), attn + t0 * qd);
  }
  linear_forward(b.o, attn, n_tok, out);
}

namespace {

// u = act(g) * u over n elements (the gated MLP's activation).
void gated_activation(const ModelConfig& cfg, const float* g, float* u, int64_t n);

}  // namespace

void moe_route(const ModelConfig& cfg, const Linear& router, const float* xn, int64_t n_tok,
               std::vector<int32_t>& experts, std::vector<float>& weights) {
  const int E = cfg.n_experts, K = cfg.top_k;
  std::vector<float> logits((size_t)n_tok * E);
  linear_forward(router, xn, n_tok, logits.data());
  experts.assign((size_t)n_tok * K, 0);
  weights.assign((size_t)n_tok * K, 0.0f);
#pragma omp parallel for if (n_tok > 64)
  for (int64_t t = 0; t < n_tok; ++t) {
    float* p = logits.data() + (size_t)t * E;
    float mx = p[0];
    for (int e = 1; e < E; ++e) mx = std::max(mx, p[e]);
    float sum = 0.0f;
    for (int e = 0; e < E; ++e) sum += (p[e] = std::exp(p[e] - mx));
    for (int e = 0; e < E; ++e) p[e] /= sum;
    int32_t* sel = experts.data() + (size_t)t * K;
    float* w = weights.data() + (size_t)t * K;
    std::vector<char> taken(E, 0);
    float wsum = 0.0f;
    for (int k = 0; k < K; ++k) {
      int best = -1;
      for (int e = 0; e < E; ++e)
        if (!taken[e] && (best < 0 || p[e] > p[best])) best = e;
      taken[best] = 1;
      sel[k] = best;
      wsum += (w[k] = p[best]);
    }
    if (cfg.norm_topk_prob)
      for (int k = 0; k < K; ++k) w[k] /= wsum;
  }
}

void moe_forward(const ModelConfig& cfg, const BlockWeights& b, const float* xn, int64_t n_tok,
                 float* out, MoeRecord* rec) {
  const int E = cfg.n_experts, K = cfg.top_k, H = cfg.hidden, I = cfg.moe_intermediate;
  std::vector<int32_t> sel;
  std::vector<float> w;
  moe_route(cfg, b.router, xn, n_tok, sel, w);
  // Rows per expert, ascending (Transformers' torch.where order).
  std::vector<std::vector<int32_t>> rows(E);
  std::vector<std::vector<float>> rw(E);
  for (int64_t t = 0; t < n_tok; ++t)
    for (int k = 0; k < K; ++k) {
      rows[sel[(size_t)t * K + k]].push_back((int32_t)t);
      rw[sel[(size_t)t * K + k]].push_back(w[(size_t)t * K + k]);
    }
  std::fill(out, out + (size_t)n_tok * H, 0.0f);
  if (rec) {
    rec->rows = rows;
    rec->weight = rw;
    rec->down_in.assign(E, {});
  }
  std::vector<float> xe, g, u, y;
  for (int e = 0; e < E; ++e) {
    const int64_t n = (int64_t)rows[e].size();
    if (n == 0) continue;
    xe.resize((size_t)n * H);
    for (int64_t i = 0; i < n; ++i)
      std::memcpy(xe.data() + (size_t)i * H, xn + (size_t)rows[e][i] * H, sizeof(float) * H);
    g.resize((size_t)n * I);
    u.resize((size_t)n * I);
    y.resize((size_t)n * H);
    const ExpertWeights& ex = b.experts[e];
    linear_forward(ex.gate, xe.data(), n, g.data());
    linear_forward(ex.up, xe.data(), n, u.data());
    gated_activation(cfg, g.data(), u.data(), n * I);
    if (rec) rec->down_in[e] = u;
    linear_forward(ex.down, u.data(), n, y.data());
    for (int64_t i = 0; i < n; ++i) {
      float* o = out + (size_t)rows[e][i] * H;
      const float* yi = y.data() + (size_t)i * H;
      const float wi = rw[e][i];
      for (int j = 0; j < H; ++j) o[j] += yi[j] * wi;
    }
  }
  if (b.shared.down.out > 0) {
    // the shared expert on every token, times sigmoid(shared_expert_gate(x)) (Qwen 2-MoE)
    const int S = cfg.shared_intermediate;
    g.resize((size_t)n_tok * S);
    u.resize((size_t)n_tok * S);
    y.resize((size_t)n_tok * H);
    std::vector<float> gate((size_t)n_tok);
    linear_forward(b.shared.gate, xn, n_tok, g.data());
    linear_forward(b.shared.up, xn, n_tok, u.data());
    gated_activation(cfg, g.data(), u.data(), n_tok * S);
    if (rec) rec->shared_down_in = u;
    linear_forward(b.shared.down, u.data(), n_tok, y.data());
    linear_forward(b.shared_gate, xn, n_tok, gate.data());
    for (int64_t t = 0; t < n_tok; ++t) {
      const float sg = 1.0f / (1.0f + std::exp(-gate[(size_t)t]));
      float* o = out + (size_t)t * H;
      const float* yt = y.data() + (size_t)t * H;
      for (int j = 0; j < H; ++j) o[j] += sg * yt[j];
    }
  }
}

void mlp_forward(const ModelConfig& cfg, const BlockWeights& b, const float* xn, int64_t n_tok,
                 float* out, float* down_in) {
  if (!b.experts.empty()) {
    moe_forward(cfg, b, xn, n_tok, out);
    return;
  }
  const int I = cfg.intermediate;
  std::vector<float> g_own, u_own;
  float* g = scratch(kMlpGate, (size_t)n_tok * I, g_own);
  float* u = down_in ? down_in : scratch(kMlpUp, (size_t)n_tok * I, u_own);
  linear_forward_multi({{&b.gate, g}, {&b.up, u}}, xn, n_tok);
  gated_activation(cfg, g, u, n_tok * I);
  linear_forward(b.down, u, n_tok, out);
}

namespace {

void gated_activation(const ModelConfig& cfg, const float* g, float* u, int64_t n) {
  const int64_t chunk = 4096;  // a multiple of every vector width: the same tail for any n
  if (cfg.act == Activation::GeluTanh) {
#pragma omp parallel for if (n > 2 * chunk)
    for (int64_t i = 0; i < n; ++i) {  // u = gelu_tanh(gate) * up, as torch's tanh approximation
      const float x = g[i];
      const float inner = 0.7978845608028654f * (x + 0.044715f * x * x * x);
      u[i] *= 0.5f * x * (1.0f + std::tanh(inner));  // gelu_tanh(gate) * up
    }
  } else {  // (exp per element: worth two threads from a few rows of a small model on)
#pragma omp parallel for if (n > 2 * chunk)
    for (int64_t i = 0; i < n; i += chunk)
      silu_mul(g + i, u + i, std::min(chunk, n - i));  // u = silu(gate) * up
  }
}

}  // namespace

void block_forward(const ModelConfig& cfg, const BlockWeights& b, const Rope& rope, float* x,
                   int n_seq, int T, BlockRecord* rec) {
  const int64_t n_tok = (int64_t)n_seq * T;
  const int H = cfg.hidden;
  std::vector<float> xn_local, tmp((size_t)n_tok * H);
  float *xn, *o_in = nullptr, *down_in = nullptr;
  if (rec) {
    rec->attn_in.resize((size_t)n_tok * H);
    rec->o_in.resize((size_t)n_tok * cfg.n_heads * cfg.head_dim);
    rec->mlp_in.resize((size_t)n_tok * H);
    if (b.experts.empty()) rec->down_in.resize((size_t)n_tok * cfg.intermediate);
    else rec->down_in.clear();
    xn = rec->attn_in.data();
    o_in = rec->o_in.data();
    down_in = rec->down_in.data();
  } else {
    xn_local.resize((size_t)n_tok * H);
    xn = xn_local.data();
  }
  rms_norm(x, b.attn_norm.data(), n_tok, H, cfg.rms_eps, xn);
  attention_forward(cfg, b, rope, xn, n_seq, T, tmp.data(), o_in);
  add_residual(cfg, b.post_attn_norm, x, tmp.data(), n_tok);
  if (rec) xn = rec->mlp_in.data();
  rms_norm(x, b.mlp_norm.data(), n_tok, H, cfg.rms_eps, xn);
  if (rec && !b.experts.empty()) moe_forward(cfg, b, xn, n_tok, tmp.data(), &rec->moe);
  else mlp_forward(cfg, b, xn, n_tok, tmp.data(), down_in);
  add_residual(cfg, b.post_mlp_norm, x, tmp.data(), n_tok);
}

void embed_tokens(const Model& m, const int32_t* tokens, int64_t n_tok, float* x) {
  const int H = m.cfg.hidden;
  for (int64_t t = 0; t < n_tok; ++t) {
    const int32_t id = std::clamp<int32_t>(tokens[t], 0, m.cfg.vocab - 1);
    std::memcpy(x + t * H, m.embed.data() + (size_t)id * H, sizeof(float) * H);
    if (m.cfg.embed_scale != 1.0f)
      for (int i = 0; i < H; ++i) x[t * H + i] *= m.cfg.embed_scale;
  }
}

void forward_hidden(const Model& m, const int32_t* tokens, int n_seq, int T, float* hidden_out) {
  const int64_t n_tok = (int64_t)n_seq * T;
  std::vector<float> x((size_t)n_tok * m.cfg.hidden);
  embed_tokens(m, tokens, n_tok, x.data());
  Rope rope;
  rope.build(m.cfg, T);
  for (const auto& b : m.blocks) {
    if (cancel_requested()) break;  // the caller checks the flag; the output is then unspecified
    block_forward(m.cfg, b, rope, x.data(), n_seq, T);
  }
  rms_norm(x.data(), m.final_norm.data(), n_tok, m.cfg.hidden, m.cfg.rms_eps, hidden_out);
}

namespace {
constexpr int64_t kF16MaxRows = 16;  // above this the fp32 sgemm is faster (compute-bound)

// Final-logit soft-capping (Gemma 2): logits = cap * tanh(logits / cap).
void softcap_logits(const ModelConfig& cfg, float* logits, int64_t n_tok) {
  if (cfg.final_softcap <= 0.0f) return;
  const float cap = cfg.final_softcap;
  const int64_t n = n_tok * cfg.vocab;
#pragma omp parallel for if (n > 65536)
  for (int64_t i = 0; i < n; ++i) logits[i] = std::tanh(logits[i] / cap) * cap;
}

}  // namespace

void lm_head_decode(const Model& m, const float* hidden, int64_t n_tok, float* logits) {
  if (!m.lm_head_q8.empty() && n_tok <= kF16MaxRows) {
    q8_matmul(m.lm_head_q8, hidden, (int)n_tok, logits);
    softcap_logits(m.cfg, logits, n_tok);
    return;
  }
  lm_head_forward(m, hidden, n_tok, logits);
}

void lm_head_forward(const Model& m, const float* hidden, int64_t n_tok, float* logits) {
  if (!m.lm_head_f16.empty() && n_tok <= kF16MaxRows) {
    f16_matmul(m.lm_head_f16.data(), m.cfg.vocab, m.cfg.hidden, hidden, (int)n_tok, logits);
    softcap_logits(m.cfg, logits, n_tok);
    return;
  }
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)n_tok, m.cfg.vocab, m.cfg.hidden,
              1.0f, hidden, m.cfg.hidden, m.lm_head_weight(), m.cfg.hidden, 0.0f, logits,
              m.cfg.vocab);
  softcap_logits(m.cfg, logits, n_tok);
}

}  // namespace awq
