// KL divergence of a quantized model from its base model over a token stream, with the same
// windows as perplexity() (docs/EVAL.md): per scored position, KL(P_base || P_quant) over the
// full vocabulary, the top-1 agreement, and the perplexity of both models.
#pragma once
#include <cstdint>
#include <vector>

#include "core/status.h"
#include "eval/perplexity.h"
#include "model/weights.h"

namespace awq {

struct KlOptions {
  int ctx = 512;
  PplProtocol protocol = PplProtocol::AutoAWQ;
  int max_windows = -1;  // -1: all full windows
  bool progress = true;
};

struct KlResult {
  double mean_kl = 0, kl_stderr = 0;  // nats; standard error of the mean
  double top1_agree = 0;              // fraction of positions with the same argmax
  double ppl_base = 0, ppl_quant = 0;
  int64_t tokens_scored = 0;
  int windows = 0;
  double seconds = 0;
  std::vector<float> kl;              // per scored position, in order
  // Per decoder block: ||h_quant - h_base||^2 / ||h_base||^2 of the residual stream after the
  // block, summed over all positions of all windows (where the two models part ways).
  std::vector<double> block_rel_err;
};

// KL(P || Q) in nats for P = softmax(p_logits), Q = softmax(q_logits) over `vocab` entries
// (double accumulation; exact 0 for identical rows).
double kl_divergence_logits(const float* p_logits, const float* q_logits, int vocab);

// Both models must share the vocabulary. Errors: vocab mismatch, too-short text, bad ctx.
Expected<KlResult> kl_divergence(const Model& base, const Model& quant,
                                 const std::vector<int32_t>& tokens, const KlOptions& opt);

}  // namespace awq
