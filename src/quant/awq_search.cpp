#include "quant/awq_search.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>

#include <cblas.h>

#include "core/cancel.h"
#include "core/flops.h"
#include "core/progress.h"

namespace awq {

namespace {
// sum_k a[k] * b[k] in double: the clip search's candidate errors (the hot loop of its sweeps).
// GCC also compiles an AVX2 clone, picked once at load time.
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && !defined(__SANITIZE_ADDRESS__)
__attribute__((target_clones("avx2", "default")))
#endif
double dot_f64(const float* a, const float* b, int n) {
  double s = 0;
#pragma omp simd reduction(+ : s)
  for (int k = 0; k < n; ++k) s += (double)a[k] * (double)b[k];
  return s;
}
}  // namespace

std::vector<float> weight_channel_mean(const std::vector<const Linear*>& linears, int group_size) {
  const int K = linears.at(0)->in;
  const int G = group_size <= 0 ? K : group_size;
  std::vector<double> acc(K, 0.0);
  int64_t rows = 0;
  for (const Linear* l : linears) {
    rows += l->out;
#pragma omp parallel
    {
      std::vector<double> local(K, 0.0);
#pragma omp for nowait
      for (int o = 0; o < l->out; ++o) {
        const float* w = l->weight.data() + (size_t)o * K;
        for (int g0 = 0; g0 < K; g0 += G) {
          const int g1 = std::min(K, g0 + G);
          float mx = 0.0f;
          for (int k = g0; k < g1; ++k) mx = std::max(mx, std::fabs(w[k]));
          const float inv = 1.0f / (mx + 1e-6f);
          for (int k = g0; k < g1; ++k) local[k] += std::fabs(w[k]) * inv;
        }
      }
#pragma omp critical
      for (int k = 0; k < K; ++k) acc[k] += local[k];
    }
  }
  std::vector<float> out(K);
  for (int k = 0; k < K; ++k) out[k] = (float)(acc[k] / (double)rows);
  return out;
}

std::vector<float> awq_scales_for_ratio(const std::vector<float>& x_mean,
                                        const std::vector<float>& w_mean, float ratio, bool duo) {
  const size_t K = x_mean.size();
  std::vector<float> s(K);
  for (size_t k = 0; k < K; ++k) {
    float v = std::pow(x_mean[k], ratio);
    if (duo) v = v / (std::pow(w_mean[k], 1.0f - ratio) + 1e-4f);
    s[k] = std::max(v, 1e-4f);
  }
  float mx = *std::max_element(s.begin(), s.end()), mn = *std::min_element(s.begin(), s.end());
  const float norm = std::sqrt(mx * mn);
  for (auto& v : s) {
    v = v / norm;
    if (!std::isfinite(v)) v = 1.0f;
  }
  return s;
}

void quantize_with_scales(Linear& l, const std::vector<float>& s, const SearchOptions& opt,
                          const std::function<void(Linear&)>& prepare) {
  const QuantConfig& q = opt.q;
  const int K = l.in;
#pragma omp parallel for
  for (int o = 0; o < l.out; ++o) {
    float* w = l.weight.data() + (size_t)o * K;
    for (int k = 0; k < K; ++k) w[k] *= s[k];
  }
  if (prepare) prepare(l);
  if (opt.quantizer) opt.quantizer(l, l.weight.data(), l.out, K, s);
  else fake_quantize(l.weight.data(), l.out, K, q);
#pragma omp parallel for
  for (int o = 0; o < l.out; ++o) {
    float* w = l.weight.data() + (size_t)o * K;
    for (int k = 0; k < K; ++k) w[k] /= s[k];
  }
}

double mse(const std::vector<float>& a, const std::vector<float>& b) {
  double sum = 0.0;
  const int64_t n = (int64_t)a.size();
#pragma omp parallel for reduction(+ : sum)
  for (int64_t i = 0; i < n; ++i) {
    const double d = (double)a[i] - (double)b[i];
    sum += d * d;
  }
  return sum / (double)std::max<int64_t>(1, n);
}

std::vector<int> gqa_o_tie(const ModelConfig& cfg) {
  const int hd = cfg.head_dim, rep = cfg.n_heads / cfg.n_kv_heads;
  std::vector<int> tie((size_t)cfg.n_heads * hd);
  for (int h = 0; h < cfg.n_heads; ++h)
    for (int d = 0; d < hd; ++d) tie[(size_t)h * hd + d] = (h / rep) * hd + d;
  return tie;
}

std::vector<float> untie_scales(const std::vector<float>& s, const std::vector<int>& tie,
                                int n_prev) {
  std::vector<float> out(n_prev, 1.0f);
  for (size_t k = tie.size(); k-- > 0;) out[tie[k]] = s[k];  // ends on the first head's value
  return out;
}

void tie_average(std::vector<float>& v, const std::vector<int>& tie) {
  const int n_ids = tie.empty() ? 0 : *std::max_element(tie.begin(), tie.end()) + 1;
  std::vector<double> sum(n_ids, 0.0);
  std::vector<int> cnt(n_ids, 0);
  for (size_t k = 0; k < v.size(); ++k) {
    sum[tie[k]] += v[k];
    ++cnt[tie[k]];
  }
  for (size_t k = 0; k < v.size(); ++k) v[k] = (float)(sum[tie[k]] / cnt[tie[k]]);
}

GramLoss::GramLoss(int K) : K_(K) { G_.assign((size_t)K * K, 0.0f); }

void GramLoss::add(const float* x, int64_t n_tok) {
  // G += X^T X, in token chunks (each chunk's partial sum in fp32).
  constexpr int64_t kChunk = 4096;
  for (int64_t t0 = 0; t0 < n_tok && !cancel_requested(); t0 += kChunk) {
    const int64_t n = std::min(kChunk, n_tok - t0);
    count_flops((double)K_ * K_ * n);  // the upper triangle of X^T X
    cblas_ssyrk(CblasRowMajor, CblasUpper, CblasTrans, K_, (int)n, 1.0f, x + t0 * K_, K_, 1.0f,
                G_.data(), K_);
  }
  n_tok_ += n_tok;
}

double GramLoss::operator()(const Linear& cur, const std::vector<float>& orig) const {
  const int N = cur.out, K = K_;
  std::vector<float> D((size_t)N * K), E((size_t)N * K);
  for (size_t i = 0; i < D.size(); ++i) D[i] = cur.weight[i] - orig[i];
  // E = D G in row blocks of >= 256 rows (or ~4 GFLOP when that is more), so that a cancel is
  // seen between them (cancelled: the result is unspecified; the caller checks). Each ssymm call
  // packs all of G (K x K): with 24-row blocks at K = 8960 (a 1.5B model's down_proj) the packing
  // took as long as the products.
  const int rows = std::max(256, (int)(2e9 / ((double)K * K)));
  for (int r0 = 0; r0 < N && !cancel_requested(); r0 += rows) {
    const int nr = std::min(rows, N - r0);
    count_flops(2.0 * nr * K * K);
    cblas_ssymm(CblasRowMajor, CblasRight, CblasUpper, nr, K, 1.0f, G_.data(), K,
                D.data() + (size_t)r0 * K, K, 0.0f, E.data() + (size_t)r0 * K, K);
  }
  double sum = 0.0;
  const int64_t n = (int64_t)N * K;
#pragma omp parallel for reduction(+ : sum)
  for (int64_t i = 0; i < n; ++i) sum += (double)D[i] * (double)E[i];
  return sum / ((double)n_tok_ * N);
}

void GramLoss::block(int k0, int n, const std::vector<float>* s, float* out) const {
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < n; ++j) {
      const int a = k0 + std::min(i, j), b = k0 + std::max(i, j);  // upper triangle
      float v = G_[(size_t)a * K_ + b];
      if (s) v = v / ((*s)[k0 + i] * (*s)[k0 + j]);
      out[(size_t)i * n + j] = v;
    }
}

int grid_points(const SearchOptions& o) {
  const int k = std::max(1, o.grid_stride);
  return std::min(o.n_grid, (o.n_grid + k - 1) / k + 2 * (k - 1));
}

ScaleResult search_scales(std::vector<Linear*> linears, const std::vector<float>& x_mean,
                          const std::function<void(std::vector<float>&)>& run_module,
                          const std::vector<float>& y_ref, const SearchOptions& opt,
                          const std::string& name) {
  std::vector<float> y;
  return search_scales_loss(
      linears, x_mean,
      [&] {
        run_module(y);
        return mse(y_ref, y);
      },
      opt, name);
}

ScaleResult search_scales_loss(std::vector<Linear*> linears, const std::vector<float>& x_mean_in,
                               const LossFn& loss_fn, const SearchOptions& opt,
                               const std::string& name, const std::vector<int>* tie,
                               const PrepareFn& prepare) {
  ScaleResult r;
  const int K = linears.at(0)->in;
  r.scales.assign(K, 1.0f);
  for (float v : x_mean_in)
    if (!std::isfinite(v)) {
      r.fallback = true;
      r.note = name + ": non-finite activation statistics; using identity scales";
      return r;
    }
  std::vector<const Linear*> cl(linears.begin(), linears.end());
  std::vector<float> w_mean = weight_channel_mean(cl, opt.q.group_size);
  std::vector<float> x_mean = x_mean_in;
  if (tie) {
    tie_average(w_mean, *tie);
    tie_average(x_mean, *tie);
  }
  std::vector<std::vector<float>> originals;
  for (Linear* l : linears) originals.push_back(l->weight);
  double best = std::numeric_limits<double>::infinity();
  r.losses.assign(opt.n_grid, std::numeric_limits<double>::quiet_NaN());
  // The ratios in evaluation order: every k-th, then the neighbours of the best coarse one.
  // Ties go to the lower index, as in one ascending pass over the full grid.
  const int k = std::max(1, opt.grid_stride);
  int done = 0;
  const int total = grid_points(opt);
  auto eval = [&](int i) {
    report_phase_fraction(std::min(1.0, (double)done++ / total));
    const float ratio = (float)i / (float)opt.n_grid;
    std::vector<float> s = awq_scales_for_ratio(x_mean, w_mean, ratio, opt.duo_scaling);
    for (size_t j = 0; j < linears.size(); ++j) {
      std::function<void(Linear&)> prep;
      if (prepare) prep = [&, j](Linear& l) { prepare((int)j, l, s); };
      quantize_with_scales(*linears[j], s, opt, prep);
    }
    const double loss = loss_fn();
    r.losses[i] = loss;
    if (std::isfinite(loss) && (loss < best || (loss == best && i < r.best_index))) {
      best = loss;
      r.best_index = i;
      r.scales = std::move(s);
    }
    for (size_t j = 0; j < linears.size(); ++j) linears[j]->weight = originals[j];
  };
  for (int i = 0; i < opt.n_grid && !cancel_requested(); i += k) eval(i);
  if (k > 1 && r.best_index >= 0) {
    const int b = r.best_index;
    for (int d = 1; d < k; ++d)
      for (int i : {b - d, b + d})
        if (i >= 0 && i < opt.n_grid && i % k != 0 && !cancel_requested()) eval(i);
  }
  // (a cancel: the caller sees the flag and discards the result)
  if (r.best_index < 0) {
    r.fallback = true;
    r.scales.assign(K, 1.0f);
    r.note = name + ": no finite loss on the grid; using identity scales";
  }
  r.best_loss = best;
  return r;
}

void apply_scales_to_norm(std::vector<float>& w, const std::vector<float>& s) {
  for (size_t i = 0; i < w.size(); ++i) w[i] /= s[i];
}

void apply_scales_to_prev_linear(Linear& prev, const std::vector<float>& s) {
  const int n = (int)s.size(), first = prev.out - n;
  for (int r = 0; r < n; ++r) {
    float* w = prev.weight.data() + (size_t)(first + r) * prev.in;
    for (int k = 0; k < prev.in; ++k) w[k] /= s[r];
    if (!prev.bias.empty()) prev.bias[first + r] /= s[r];
  }
}

void apply_scales_to_linear(Linear& l, const std::vector<float>& s) {
#pragma omp parallel for
  for (int o = 0; o < l.out; ++o) {
    float* w = l.weight.data() + (size_t)o * l.in;
    for (int k = 0; k < l.in; ++k) w[k] *= s[k];
  }
}

void divide_inputs(std::vector<float>& x, int width, const std::vector<float>& s) {
  const int64_t n = (int64_t)x.size() / width;
#pragma omp parallel for
  for (int64_t t = 0; t < n; ++t)
    for (int k = 0; k < width; ++k) x[(size_t)t * width + k] /= s[k];
}

ClipResult search_and_apply_clip(Linear& l, const float* x, int64_t n_tok,
                                 const SearchOptions& opt) {
  const int K = l.in, N = l.out;
  const int G = opt.q.group_size <= 0 ? K : opt.q.group_size;
  const int n_groups = K / G;
  // Sample every step-th token (the reference keeps n_tok / 512 evenly spaced tokens).
  const int64_t step = std::max<int64_t>(1, n_tok / opt.clip_sample_tokens);
  std::vector<float> xs;
  int T = 0;
  for (int64_t t = 0; t < n_tok; t += step, ++T) xs.insert(xs.end(), x + t * K, x + (t + 1) * K);
  const int n_shrink = std::max(1, (int)(opt.max_shrink * opt.clip_grid));
  const int cand = n_shrink + 1;  // row 0: original weights; rows 1..n_shrink: clipped + quantized
  ClipResult res;
  res.max_val.assign((size_t)N * n_groups, 0.0f);
  double err0 = 0, err1 = 0;
  QuantConfig qg = opt.q;
  qg.group_size = G;
  const int rb = std::max(1, opt.clip_batch_rows);
  const int n_batches = (N + rb - 1) / rb;
#pragma omp parallel reduction(+ : err0, err1)
  {
    std::vector<float> A, C, mvs;
#pragma omp for schedule(dynamic, 1)
    for (int bi = 0; bi < n_batches; ++bi) {
      if (cancel_requested()) continue;  // results unspecified; the caller checks
      const int o0 = bi * rb, o1 = std::min(N, o0 + rb), nr = o1 - o0;
      A.resize((size_t)nr * cand * G);
      C.resize((size_t)nr * cand * T);
      mvs.resize((size_t)nr * cand);
      for (int g = 0; g < n_groups; ++g) {
        for (int r = 0; r < nr; ++r) {
          const float* w = l.weight.data() + (size_t)(o0 + r) * K + (size_t)g * G;
          float amax = 0.0f;
          for (int k = 0; k < G; ++k) amax = std::max(amax, std::fabs(w[k]));
          float* a = A.data() + (size_t)r * cand * G;
          std::copy(w, w + G, a);
          for (int i = 0; i < n_shrink; ++i) {
            const float mv = amax * (1.0f - (float)i / (float)opt.clip_grid);
            mvs[(size_t)r * cand + 1 + i] = mv;
            float* c = a + (size_t)(1 + i) * G;
            for (int k = 0; k < G; ++k) c[k] = std::clamp(w[k], -mv, mv);
          }
          fake_quantize(a + G, n_shrink, G, qg);
        }
        // C[(r, cand)][t] = sum_k A[(r, cand)][k] * xs[t][g*G + k]
        count_flops(2.0 * nr * cand * T * G);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nr * cand, T, G, 1.0f, A.data(), G,
                    xs.data() + (size_t)g * G, K, 0.0f, C.data(), T);
        for (int r = 0; r < nr; ++r) {
          const float* org = C.data() + (size_t)r * cand * T;
          double best = std::numeric_limits<double>::infinity(), first = 0;
          int best_i = 0;
          for (int i = 0; i < n_shrink; ++i) {
            const float* cur = org + (size_t)(1 + i) * T;
            double err = 0;
            for (int t = 0; t < T; ++t) {
              const double d = (double)cur[t] - (double)org[t];
              err += d * d;
            }
            err /= T;
            if (i == 0) first = err;
            if (err < best) {
              best = err;
              best_i = i;
            }
          }
          if (!std::isfinite(best)) best = first;
          err0 += first;
          err1 += best;
          const float mv = mvs[(size_t)r * cand + 1 + best_i];
          res.max_val[(size_t)(o0 + r) * n_groups + g] = mv;
          float* w = l.weight.data() + (size_t)(o0 + r) * K + (size_t)g * G;
          for (int k = 0; k < G; ++k) w[k] = std::clamp(w[k], -mv, mv);
        }
      }
    }
  }
  res.err_before = err0 / ((double)N * n_groups);
  res.err_after = err1 / ((double)N * n_groups);
  return res;
}

ClipResult search_and_apply_clip_gram(Linear& l, const GramLoss& gram,
                                      const std::vector<float>* in_scale,
                                      const SearchOptions& opt) {
  const int K = l.in, N = l.out;
  const int G = opt.q.group_size <= 0 ? K : opt.q.group_size;
  const int n_groups = K / G;
  const int n_shrink = std::max(1, (int)(opt.max_shrink * opt.clip_grid));
  const bool joint = opt.clip_mode == SearchOptions::ClipMode::Joint && n_groups > 1;
  const bool asym = opt.clip_mode == SearchOptions::ClipMode::GramAsym ||
                    opt.clip_mode == SearchOptions::ClipMode::Joint;
  const int sweeps = joint ? std::max(0, opt.clip_sweeps) : 0;
  // Candidates: symmetric i = 0..n_shrink-1 (i = 0: plain quantization), then (i, j) pairs
  // with i, j multiples of the pair stride.
  const int stride = std::max(1, opt.clip_pair_stride);
  const int n_pair = (n_shrink + stride - 1) / stride;
  const int cand = n_shrink + (asym ? n_pair * n_pair : 0);
  std::vector<float> Gd((size_t)n_groups * G * G);
  for (int g = 0; g < n_groups; ++g) gram.block(g * G, G, in_scale, Gd.data() + (size_t)g * G * G);
  std::vector<float> Gf;  // the whole (scaled) Gram, for the cross-group terms
  if (sweeps > 0) {
    Gf.resize((size_t)K * K);
    gram.block(0, K, in_scale, Gf.data());
  }
  ClipResult res;
  res.max_val.assign((size_t)N * n_groups, 0.0f);
  double err0 = 0, err1 = 0;
  QuantConfig qg = opt.q;
  qg.group_size = G;
  const int rb = std::max(1, std::min(opt.clip_batch_rows, 16));
  const int n_batches = (N + rb - 1) / rb;
#pragma omp parallel reduction(+ : err0, err1)
  {
    std::vector<float> D, E, lo, hi, Dsel, D0, Ef, R, delta, Lp, Hp;
    std::vector<double> OE;
    std::vector<int> pick;
    // With sweeps, the candidates of every group of the batch are kept (slot g) and reused by
    // each sweep: they depend only on the weights, which are clamped after the last sweep.
    // Without, one slot is reused group after group.
    int nr_cur = 0;
    auto slot = [&](int g) { return (size_t)(sweeps > 0 ? g : 0) * nr_cur * cand; };
    // Candidate c of row r of group g: its index in lo/hi/OE (times G: its offset in D).
    auto at = [&](int g, int r, int c) { return slot(g) + (size_t)r * cand + c; };
    // Candidate errors D_c = Q(clamp(w_g, L_c, H_c)) - w_g of group g for rows o0 .. o0+nr.
    auto make_candidates = [&](int o0, int nr, int g) {
      for (int r = 0; r < nr; ++r) {
        const float* w = l.weight.data() + (size_t)(o0 + r) * K + (size_t)g * G;
        float mx = w[0], mn = w[0];
        for (int k = 1; k < G; ++k) mx = std::max(mx, w[k]), mn = std::min(mn, w[k]);
        const float amax = std::max(std::fabs(mx), std::fabs(mn));
        float* d = D.data() + at(g, r, 0) * G;
        float* L = lo.data() + at(g, r, 0);
        float* H = hi.data() + at(g, r, 0);
        int c = 0;
        for (int i = 0; i < n_shrink; ++i, ++c) {
          const float mv = amax * (1.0f - (float)i / (float)opt.clip_grid);
          L[c] = -mv, H[c] = mv;
        }
        if (asym)
          for (int i = 0; i < n_shrink; i += stride)
            for (int j = 0; j < n_shrink; j += stride, ++c) {
              H[c] = mx > 0 ? mx * (1.0f - (float)i / (float)opt.clip_grid) : mx;
              L[c] = mn < 0 ? mn * (1.0f - (float)j / (float)opt.clip_grid) : mn;
            }
        for (c = 0; c < cand; ++c)
          for (int k = 0; k < G; ++k) d[(size_t)c * G + k] = std::clamp(w[k], L[c], H[c]);
        fake_quantize(d, cand, G, qg);
        for (c = 0; c < cand; ++c)
          for (int k = 0; k < G; ++k) d[(size_t)c * G + k] -= w[k];
      }
      // E = D * G_gg; the group's own error of a candidate = sum_k D * E (kept in OE).
      count_flops(2.0 * nr * cand * G * G);
      const float* Dg = D.data() + slot(g) * G;
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, nr * cand, G, G, 1.0f, Dg, G,
                  Gd.data() + (size_t)g * G * G, G, 0.0f, E.data(), G);
      for (size_t rc = 0; rc < (size_t)nr * cand; ++rc) {
        const float* d = Dg + rc * G;
        const float* e = E.data() + rc * G;
        OE[slot(g) + rc] = dot_f64(d, e, G);
      }
    };
    auto own_err = [&](int g, int r, int c) { return OE[at(g, r, c)]; };
#pragma omp for schedule(dynamic, 1)
    for (int bi = 0; bi < n_batches; ++bi) {
      if (cancel_requested()) continue;  // results unspecified; the caller checks
      const int o0 = bi * rb, o1 = std::min(N, o0 + rb), nr = o1 - o0;
      nr_cur = nr;
      const size_t slots = sweeps > 0 ? n_groups : 1;
      D.resize(slots * nr * cand * G);
      E.resize((size_t)nr * cand * G);
      OE.resize(slots * nr * cand);
      lo.resize(slots * nr * cand);
      hi.resize(slots * nr * cand);
      pick.assign((size_t)nr * n_groups, 0);
      Lp.resize((size_t)nr * n_groups);
      Hp.resize((size_t)nr * n_groups);
      if (sweeps > 0) {
        Dsel.resize((size_t)nr * K);
        D0.resize((size_t)nr * K);
      }
      // 1. Each group on its own error (the cross terms ignored).
      for (int g = 0; g < n_groups; ++g) {
        make_candidates(o0, nr, g);
        for (int r = 0; r < nr; ++r) {
          double best = std::numeric_limits<double>::infinity(), first = 0;
          int best_c = 0;
          for (int c = 0; c < cand; ++c) {
            const double err = own_err(g, r, c);
            if (c == 0) first = err;
            if (err < best) best = err, best_c = c;
          }
          if (!std::isfinite(best)) best = first, best_c = 0;
          const size_t rg = (size_t)r * n_groups + g;
          pick[rg] = best_c;
          Lp[rg] = lo[at(g, r, best_c)];
          Hp[rg] = hi[at(g, r, best_c)];
          if (sweeps > 0) {
            std::copy_n(D.data() + at(g, r, best_c) * G, G,
                        Dsel.data() + (size_t)r * K + (size_t)g * G);
            std::copy_n(D.data() + at(g, r, 0) * G, G, D0.data() + (size_t)r * K + (size_t)g * G);
          } else {
            err0 += first;
            err1 += best;
          }
        }
      }
      if (sweeps > 0) {
        // 2. Coordinate descent on the whole row's error  sum_r Dsel_r^T G Dsel_r.
        //    Ef = Dsel * G (all of it); for group g the row's error as a function of its pick d
        //    is d^T G_gg d + 2 d^T (Ef_g - Dsel_g G_gg) + const.
        Ef.resize((size_t)nr * K);
        R.resize((size_t)nr * G);
        delta.resize((size_t)nr * G);
        // err0: the whole-row error of plain quantization (candidate 0 everywhere).
        count_flops(4.0 * nr * K * K);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, nr, K, K, 1.0f, D0.data(), K,
                    Gf.data(), K, 0.0f, Ef.data(), K);
        for (size_t i = 0; i < (size_t)nr * K; ++i) err0 += (double)D0[i] * Ef[i];
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, nr, K, K, 1.0f, Dsel.data(), K,
                    Gf.data(), K, 0.0f, Ef.data(), K);
      }
      for (int sw = 0; sw < sweeps; ++sw) {
        for (int g = 0; g < n_groups; ++g) {
          // R = Ef_g - Dsel_g G_gg: what the other groups contribute to the row's gradient.
          count_flops(2.0 * nr * G * G);
          cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, nr, G, G, -1.0f,
                      Dsel.data() + (size_t)g * G, K, Gd.data() + (size_t)g * G * G, G, 0.0f,
                      R.data(), G);
          for (int r = 0; r < nr; ++r)
            for (int k = 0; k < G; ++k) R[(size_t)r * G + k] += Ef[(size_t)r * K + g * G + k];
          bool changed = false;
          for (int r = 0; r < nr; ++r) {
            int& cur = pick[(size_t)r * n_groups + g];
            const float* rr = R.data() + (size_t)r * G;
            double best = std::numeric_limits<double>::infinity();
            int best_c = cur;
            for (int c = 0; c < cand; ++c) {
              const float* d = D.data() + at(g, r, c) * G;
              const double cross = dot_f64(d, rr, G);
              const double err = own_err(g, r, c) + 2.0 * cross;
              if (err < best) best = err, best_c = c;
            }
            float* dsel = Dsel.data() + (size_t)r * K + (size_t)g * G;
            const float* dn = D.data() + at(g, r, best_c) * G;
            float* dl = delta.data() + (size_t)r * G;
            for (int k = 0; k < G; ++k) dl[k] = dn[k] - dsel[k];
            if (best_c != cur && std::isfinite(best)) {
              changed = true;
              cur = best_c;
              std::copy_n(dn, G, dsel);
              Lp[(size_t)r * n_groups + g] = lo[at(g, r, best_c)];
              Hp[(size_t)r * n_groups + g] = hi[at(g, r, best_c)];
            } else {
              std::fill(dl, dl + G, 0.0f);
            }
          }
          if (changed) {  // Ef += delta * G[g rows, :]
            count_flops(2.0 * nr * G * K);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, nr, K, G, 1.0f, delta.data(),
                        G, Gf.data() + (size_t)g * G * K, K, 1.0f, Ef.data(), K);
          }
        }
      }
      // The rows' exact error; then clamp every group to its pick.
      if (sweeps > 0)
        for (size_t i = 0; i < (size_t)nr * K; ++i) err1 += (double)Dsel[i] * Ef[i];
      for (int r = 0; r < nr; ++r)
        for (int g = 0; g < n_groups; ++g) {
          const size_t rg = (size_t)r * n_groups + g;
          res.max_val[(size_t)(o0 + r) * n_groups + g] = Hp[rg];
          float* w = l.weight.data() + (size_t)(o0 + r) * K + (size_t)g * G;
          for (int k = 0; k < G; ++k) w[k] = std::clamp(w[k], Lp[rg], Hp[rg]);
        }
    }
  }
  const double n_tok = (double)std::max<int64_t>(1, gram.tokens());
  res.err_before = err0 / ((double)N * n_groups * n_tok);
  res.err_after = err1 / ((double)N * n_groups * n_tok);
  return res;
}

bool set_grid_clip(SearchOptions& o, const std::string& name) {
  if (name == "asym") o.grid_clip_mode = SearchOptions::ClipMode::GramAsym, o.grid_clip_pair_stride = 1;
  else if (name == "coarse") o.grid_clip_mode = SearchOptions::ClipMode::GramAsym, o.grid_clip_pair_stride = 2;
  else if (name == "sym") o.grid_clip_mode = SearchOptions::ClipMode::Gram, o.grid_clip_pair_stride = 1;
  else return false;
  return true;
}

std::string grid_clip_name(const SearchOptions& o) {
  if (o.grid_clip_mode == SearchOptions::ClipMode::Gram) return "sym";
  return o.grid_clip_pair_stride > 1 ? "coarse" : "asym";
}

}  // namespace awq
