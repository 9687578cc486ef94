#include "eval/kl.h"

#include <algorithm>
#include <chrono>
#include <cmath>

#include "core/cancel.h"
#include "core/progress.h"
#include "kernels/vmath.h"
#include "model/forward.h"

namespace awq {

double kl_divergence_logits(const float* p, const float* q, int vocab) {
  float mp, mq;
  const double lzp = log_sum_exp(p, vocab, &mp), lzq = log_sum_exp(q, vocab, &mq);
  double kl = 0;
  for (int j = 0; j < vocab; ++j) {
    const double lp = (double)p[j] - lzp, lq = (double)q[j] - lzq;
    kl += std::exp(lp) * (lp - lq);
  }
  return std::max(0.0, kl);  // rounding can give tiny negatives
}

Expected<KlResult> kl_divergence(const Model& base, const Model& quant,
                                 const std::vector<int32_t>& tokens, const KlOptions& opt) {
  if (base.cfg.vocab != quant.cfg.vocab)
    return make_error("kl: vocabulary sizes differ: base ", base.cfg.vocab, ", quantized ",
                      quant.cfg.vocab);
  if (base.cfg.hidden != quant.cfg.hidden)
    return make_error("kl: hidden sizes differ: base ", base.cfg.hidden, ", quantized ",
                      quant.cfg.hidden, " (not the same model?)");
  const int ctx = opt.ctx;
  AWQ_ASSIGN(const WindowPlan plan, plan_windows(tokens.size(), ctx, opt.protocol, opt.max_windows));
  const int n_windows = plan.n_windows, first = plan.first;
  const int H = base.cfg.hidden, V = base.cfg.vocab;
  std::vector<float> hb((size_t)ctx * H), hq((size_t)ctx * H);
  constexpr int kRowChunk = 64;
  std::vector<float> lb((size_t)kRowChunk * V), lq((size_t)kRowChunk * V);
  std::vector<double> nll_b(kRowChunk), nll_q(kRowChunk), kl(kRowChunk);
  std::vector<char> agree(kRowChunk);
  KlResult res;
  double sum_nll_b = 0, sum_nll_q = 0;
  int64_t n_agree = 0;
  Progress prog("kl", n_windows, " win");
  if (opt.progress) prog.update(0);
  const auto t0 = std::chrono::steady_clock::now();
  const int L = std::min(base.cfg.n_layers, quant.cfg.n_layers);
  std::vector<double> err_num(L, 0.0), err_den(L, 0.0);
  Rope rope_b, rope_q;
  rope_b.build(base.cfg, ctx);
  rope_q.build(quant.cfg, ctx);
  std::vector<float> xb((size_t)ctx * H), xq((size_t)ctx * H);
  for (int w = 0; w < n_windows; ++w) {
    const int32_t* win = tokens.data() + (size_t)w * ctx;
    // The forward pass of forward_hidden(), both models in lockstep, measuring each block.
    embed_tokens(base, win, ctx, xb.data());
    embed_tokens(quant, win, ctx, xq.data());
    for (int l = 0; l < L; ++l) {
      AWQ_TRY(check_cancel("kl"));
      block_forward(base.cfg, base.blocks[l], rope_b, xb.data(), 1, ctx);
      block_forward(quant.cfg, quant.blocks[l], rope_q, xq.data(), 1, ctx);
      double num = 0, den = 0;
      const int64_t n_el = (int64_t)ctx * H;
#pragma omp parallel for reduction(+ : num, den)
      for (int64_t i = 0; i < n_el; ++i) {
        const double d = (double)xq[i] - xb[i];
        num += d * d;
        den += (double)xb[i] * xb[i];
      }
      err_num[l] += num;
      err_den[l] += den;
    }
    rms_norm(xb.data(), base.final_norm.data(), ctx, H, base.cfg.rms_eps, hb.data());
    rms_norm(xq.data(), quant.final_norm.data(), ctx, H, quant.cfg.rms_eps, hq.data());
    for (int r0 = first; r0 < ctx - 1; r0 += kRowChunk) {
      const int n = std::min(kRowChunk, ctx - 1 - r0);
      lm_head_forward(base, hb.data() + (size_t)r0 * H, n, lb.data());
      lm_head_forward(quant, hq.data() + (size_t)r0 * H, n, lq.data());
      target_logprobs(lb.data(), n, V, win + r0 + 1, nll_b.data());
      target_logprobs(lq.data(), n, V, win + r0 + 1, nll_q.data());
#pragma omp parallel for
      for (int i = 0; i < n; ++i) {
        const float* p = lb.data() + (size_t)i * V;
        const float* q = lq.data() + (size_t)i * V;
        kl[i] = kl_divergence_logits(p, q, V);
        agree[i] = std::max_element(p, p + V) - p == std::max_element(q, q + V) - q;
      }
      for (int i = 0; i < n; ++i) {
        res.kl.push_back((float)kl[i]);
        sum_nll_b -= nll_b[i];
        sum_nll_q -= nll_q[i];
        n_agree += agree[i];
      }
    }
    if (opt.progress) prog.update(w + 1);
  }
  if (opt.progress) prog.finish();
  for (int l = 0; l < L; ++l) res.block_rel_err.push_back(err_num[l] / std::max(1e-300, err_den[l]));
  res.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  res.windows = n_windows;
  res.tokens_scored = (int64_t)res.kl.size();
  const double n = (double)res.tokens_scored;
  double s = 0, s2 = 0;
  for (float x : res.kl) {
    s += x;
    s2 += (double)x * x;
  }
  res.mean_kl = s / n;
  const double var = std::max(0.0, s2 / n - res.mean_kl * res.mean_kl);
  res.kl_stderr = std::sqrt(var / std::max(1.0, n - 1));
  res.top1_agree = (double)n_agree / n;
  res.ppl_base = std::exp(sum_nll_b / n);
  res.ppl_quant = std::exp(sum_nll_q / n);
  return res;
}

}  // namespace awq
