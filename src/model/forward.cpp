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

void rms_norm(const float* x, const float* w, int64_t n_tok, int dim, float eps, float* y) {
#pragma omp parallel for if (n_tok > 16)
  for (int64_t t = 0; t < n_tok; ++t) {
    const float* xr = x + t * dim;
    float* yr = y + t * dim;
    float ss = 0.0f;
    for (int i = 0; i < dim; ++i) ss += xr[i] * xr[i];
    const float inv = 1.0f / std::sqrt(ss / (float)dim + eps);
    for (int i = 0; i < dim; ++i) yr[i] = w[i] * (xr[i] * inv);
  }
}

void Rope::build(const ModelConfig& cfg, int n_pos) {
  head_dim = cfg.head_dim;
  const int half = head_dim / 2;
  // inv_freq as HF computes it: 1 / theta^(2i/d) in fp32
  std::vector<float> inv_freq(half);
  for (int i = 0; i < half; ++i) {
    const float expo = (float)(2 * i) / (float)head_dim;
    inv_freq[i] = 1.0f / std::pow(cfg.rope_theta, expo);
  }
  const RopeScaling& rs = cfg.rope_scaling;
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
  }
  cos.resize((size_t)n_pos * half);
  sin.resize((size_t)n_pos * half);
  for (int p = 0; p < n_pos; ++p)
    for (int i = 0; i < half; ++i) {
      const float a = (float)p * inv_freq[i];  // fp32 product, as the reference
      cos[(size_t)p * half + i] = (float)std::cos((double)a);
      sin[(size_t)p * half + i] = (float)std::sin((double)a);
    }
}

void Rope::apply(float* x, int64_t n_rows, int n_heads, const int* positions) const {
  const int half = head_dim / 2;
#pragma omp parallel for if (n_rows > 16)
  for (int64_t t = 0; t < n_rows; ++t) {
    const float* c = cos.data() + (size_t)positions[t] * half;
    const float* s = sin.data() + (size_t)positions[t] * half;
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
                      int T, int pos0, float* out) {
  const int hd = cfg.head_dim, nh = cfg.n_heads, nkv = cfg.n_kv_heads;
  const int group = nh / nkv;
  const float scale = 1.0f / std::sqrt((float)hd);
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
          softmax_row(row, pos0 + r0 + i + 1, S);
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, hd, S, 1.0f, scores.data(), S,
                    v + kvh * hd, nkv * hd, 0.0f, out + (size_t)r0 * nh * hd + h * hd, nh * hd);
      }
  }
}

}  // namespace

void attention_forward(const ModelConfig& cfg, const BlockWeights& b, const Rope& rope,
                       const float* xn, int n_seq, int T, float* out, float* o_in) {
  const int64_t n_tok = (int64_t)n_seq * T;
  const int qd = cfg.n_heads * cfg.head_dim, kvd = cfg.n_kv_heads * cfg.head_dim;
  std::vector<float> q((size_t)n_tok * qd), k((size_t)n_tok * kvd), v((size_t)n_tok * kvd);
  linear_forward(b.q, xn, n_tok, q.data());
  linear_forward(b.k, xn, n_tok, k.data());
  linear_forward(b.v, xn, n_tok, v.data());
  std::vector<int> pos((size_t)n_tok);
  for (int64_t t = 0; t < n_tok; ++t) pos[t] = (int)(t % T);
  rope.apply(q.data(), n_tok, cfg.n_heads, pos.data());
  rope.apply(k.data(), n_tok, cfg.n_kv_heads, pos.data());
  std::vector<float> attn_local;
  float* attn = o_in;
  if (!attn) {
    attn_local.resize((size_t)n_tok * qd);
    attn = attn_local.data();
  }
  for (int s = 0; s < n_seq; ++s) {
    const size_t t0 = (size_t)s * T;
    causal_attention(cfg, q.data() + t0 * qd, k.data() + t0 * kvd, v.data() + t0 * kvd, T, 0,
                     attn + t0 * qd);
  }
  linear_forward(b.o, attn, n_tok, out);
}

void mlp_forward(const ModelConfig& cfg, const BlockWeights& b, const float* xn, int64_t n_tok,
                 float* out, float* down_in) {
  const int I = cfg.intermediate;
  std::vector<float> g((size_t)n_tok * I), u_local;
  float* u = down_in;
  if (!u) {
    u_local.resize((size_t)n_tok * I);
    u = u_local.data();
  }
  linear_forward(b.gate, xn, n_tok, g.data());
  linear_forward(b.up, xn, n_tok, u);
  const int64_t n = n_tok * I;
  const int64_t chunk = 16384;
#pragma omp parallel for if (n > 65536)
  for (int64_t i = 0; i < n; i += chunk)
    silu_mul(g.data() + i, u + i, std::min(chunk, n - i));  // u = silu(gate) * up
  linear_forward(b.down, u, n_tok, out);
}

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
    rec->down_in.resize((size_t)n_tok * cfg.intermediate);
    xn = rec->attn_in.data();
    o_in = rec->o_in.data();
    down_in = rec->down_in.data();
  } else {
    xn_local.resize((size_t)n_tok * H);
    xn = xn_local.data();
  }
  rms_norm(x, b.attn_norm.data(), n_tok, H, cfg.rms_eps, xn);
  attention_forward(cfg, b, rope, xn, n_seq, T, tmp.data(), o_in);
  const int64_t n = n_tok * H;
#pragma omp parallel for if (n > 65536)
  for (int64_t i = 0; i < n; ++i) x[i] += tmp[i];
  if (rec) xn = rec->mlp_in.data();
  rms_norm(x, b.mlp_norm.data(), n_tok, H, cfg.rms_eps, xn);
  mlp_forward(cfg, b, xn, n_tok, tmp.data(), down_in);
#pragma omp parallel for if (n > 65536)
  for (int64_t i = 0; i < n; ++i) x[i] += tmp[i];
}

void embed_tokens(const Model& m, const int32_t* tokens, int64_t n_tok, float* x) {
  const int H = m.cfg.hidden;
  for (int64_t t = 0; t < n_tok; ++t) {
    const int32_t id = std::clamp<int32_t>(tokens[t], 0, m.cfg.vocab - 1);
    std::memcpy(x + t * H, m.embed.data() + (size_t)id * H, sizeof(float) * H);
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
}

void lm_head_decode(const Model& m, const float* hidden, int64_t n_tok, float* logits) {
  if (!m.lm_head_q8.empty() && n_tok <= kF16MaxRows) {
    q8_matmul(m.lm_head_q8, hidden, (int)n_tok, logits);
    return;
  }
  lm_head_forward(m, hidden, n_tok, logits);
}

void lm_head_forward(const Model& m, const float* hidden, int64_t n_tok, float* logits) {
  if (!m.lm_head_f16.empty() && n_tok <= kF16MaxRows) {
    f16_matmul(m.lm_head_f16.data(), m.cfg.vocab, m.cfg.hidden, hidden, (int)n_tok, logits);
    return;
  }
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)n_tok, m.cfg.vocab, m.cfg.hidden,
              1.0f, hidden, m.cfg.hidden, m.lm_head_weight(), m.cfg.hidden, 0.0f, logits,
              m.cfg.vocab);
}

}  // namespace awq
