#include "eval/perplexity.h"

#include <chrono>
#include <cmath>

#include "core/cancel.h"
#include "core/progress.h"
#include "kernels/vmath.h"
#include "model/forward.h"

namespace awq {

const char* protocol_name(PplProtocol p) {
  return p == PplProtocol::AutoAWQ ? "autoawq" : "llamacpp";
}

Expected<PplProtocol> parse_protocol(const std::string& s) {
  if (s == "autoawq" || s == "default") return PplProtocol::AutoAWQ;
  if (s == "llamacpp") return PplProtocol::LlamaCpp;
  return make_error("--protocol: unknown protocol \"", s, "\" (expected autoawq or llamacpp)");
}

void target_logprobs(const float* logits, int64_t rows, int vocab, const int32_t* targets,
                     double* out) {
#pragma omp parallel for
  for (int64_t r = 0; r < rows; ++r) {
    const float* l = logits + r * vocab;
    out[r] = (double)l[targets[r]] - log_sum_exp(l, vocab);
  }
}

Expected<WindowPlan> plan_windows(size_t n_tokens, int ctx, PplProtocol protocol,
                                  int max_windows) {
  if (ctx < 4) return make_error("--ctx must be at least 4, got ", ctx);
  WindowPlan p;
  p.n_windows = (int)(n_tokens / (size_t)ctx);
  if (p.n_windows == 0)
    return make_error("text too short: ", n_tokens, " tokens, need at least one window of ", ctx,
                      " (lower --ctx)");
  if (max_windows > 0) p.n_windows = std::min(p.n_windows, max_windows);
  p.first = protocol == PplProtocol::AutoAWQ ? 0 : ctx / 2;
  return p;
}

Expected<PplResult> perplexity(const Model& m, const std::vector<int32_t>& tokens,
                               const PplOptions& opt) {
  const int ctx = opt.ctx;
  AWQ_ASSIGN(const WindowPlan plan, plan_windows(tokens.size(), ctx, opt.protocol, opt.max_windows));
  const int n_windows = plan.n_windows, first = plan.first;
  const int rows = ctx - 1 - first;  // logit rows i in [first, ctx-1) predict token i+1
  PplResult res;
  res.protocol = opt.protocol;
  res.nll.reserve((size_t)n_windows * rows);
  const int H = m.cfg.hidden, V = m.cfg.vocab;
  std::vector<float> hidden((size_t)ctx * H);
  constexpr int kRowChunk = 128;
  std::vector<float> logits((size_t)kRowChunk * V);
  std::vector<double> lp(kRowChunk);
  Progress prog("ppl", n_windows, " win");
  if (opt.progress) prog.update(0);
  const auto t0 = std::chrono::steady_clock::now();
  for (int w = 0; w < n_windows; ++w) {
    const int32_t* win = tokens.data() + (size_t)w * ctx;
    forward_hidden(m, win, 1, ctx, hidden.data());
    AWQ_TRY(check_cancel("ppl"));
    for (int r0 = first; r0 < ctx - 1; r0 += kRowChunk) {
      const int n = std::min(kRowChunk, ctx - 1 - r0);
      lm_head_forward(m, hidden.data() + (size_t)r0 * H, n, logits.data());
      target_logprobs(logits.data(), n, V, win + r0 + 1, lp.data());
      for (int i = 0; i < n; ++i) res.nll.push_back((float)-lp[i]);
    }
    if (opt.progress) prog.update(w + 1);
  }
  if (opt.progress) prog.finish();
  res.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  res.windows = n_windows;
  res.tokens_scored = (int64_t)res.nll.size();
  res.tokens_processed = (int64_t)n_windows * ctx;
  double sum = 0, sum2 = 0;
  for (float x : res.nll) {
    sum += x;
    sum2 += (double)x * x;
  }
  const double n = (double)res.tokens_scored;
  res.mean_nll = sum / n;
  const double var = std::max(0.0, sum2 / n - res.mean_nll * res.mean_nll);
  res.ppl = std::exp(res.mean_nll);
  res.ppl_stderr = res.ppl * std::sqrt(var / std::max(1.0, n - 1));  // delta method
  return res;
}

}  // namespace awq
