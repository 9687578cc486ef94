// Our engine's logits against HF Transformers loading our checkpoint unchanged, through the
// loader each format's users run (scripts/transformers_logits.py; `make test` writes the
// fixtures, see Makefile):
//   - a compressed-tensors checkpoint of SmolLM2 (`awq quantize --format compressed-tensors`),
//     Transformers + the compressed-tensors library;
//   - an AutoAWQ GEMM checkpoint of SmolLM2 (`awq quantize`), Transformers 5, which loads AWQ
//     through gptqmodel, and AutoAWQ 0.2.9's own from_quantized (scripts/autoawq_logits.py).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "io/safetensors.h"
#include "model/forward.h"
#include "model/weights.h"

namespace awq {
namespace {

void check_against_transformers(const char* dir, const char* fx_path,
                                QuantizationInfo::Method method) {
  // The exact fp32 weights (q - z) * s. The W4 kernels are not an fp32 computation (int8 decode
  // activations, AWQ_DECODE); that the W4 matrix holds exactly these weights is pinned by
  // CtCheckpoint.EngineLoadsExactlyOurDequantizedWeights and the AWQ checkpoint tests, the
  // kernels by awq_kernels_tests.
  for (bool keep_w4 : {false}) {
    SCOPED_TRACE("fp32 weights");
    LoadOptions lo;
    lo.keep_w4 = keep_w4;
    lo.lm_head = LmHeadFormat::F16;  // exact: the head as stored
    auto m = load_model(dir, lo);
    ASSERT_TRUE(m.ok()) << m.error().message;
    ASSERT_EQ(m->cfg.quant.method, method);
    auto fx = SafeTensors::open(fx_path);
    ASSERT_TRUE(fx.ok()) << fx.error().message;
    auto as_i32 = [&](const std::string& n) {
      const TensorView* t = fx->find(n);
      EXPECT_TRUE(t) << n;
      const int32_t* p = reinterpret_cast<const int32_t*>(t->data);
      return std::vector<int32_t>(p, p + t->numel());
    };
    const auto sel = as_i32("sel_ids");
    double worst = 0, worst_excess = 0, worst_exact = 0;
    int argmax_checked = 0, exact_checked = 0;
    for (int i = 0; fx->find("tokens_" + std::to_string(i)); ++i) {
      const std::string s = std::to_string(i);
      const auto toks = as_i32("tokens_" + s), am = as_i32("argmax_" + s);
      const int T = (int)toks.size(), V = m->cfg.vocab;
      const auto lse = *fx->to_f32("lse_" + s), ref = *fx->to_f32("sel_" + s),
                 dsel = *fx->to_f32("dsel_" + s), gap = *fx->to_f32("gap_" + s);
      // The loader's logits with the exact fp32 weights, where the fixture has them: our fp32
      // engine must equal those within fp32 summation order alone.
      std::vector<float> xsel;
      if (fx->find("xsel_" + s)) xsel = *fx->to_f32("xsel_" + s);
      std::vector<float> hidden((size_t)T * m->cfg.hidden), logits((size_t)T * V);
      forward_hidden(*m, toks.data(), 1, T, hidden.data());
      lm_head_forward(*m, hidden.data(), T, logits.data());
      for (int t = 0; t < T; ++t) {
        const float* row = logits.data() + (size_t)t * V;
        // |ours - HF| <= |ours - HF on the exact fp32 weights| + |that - HF as loaded|: the first
        // term is fp32 summation order only (the bound of SmolLM2.LogitsMatchTransformers, 2e-4
        // of the row's logit scale), the second the loader's own rounding (fp16 weights, or
        // AutoAWQ's fp16 arithmetic) measured by the script.
        const double acc = 2e-4 * std::max(1.0f, std::fabs(lse[t]));
        double row_tol = acc;
        for (size_t k = 0; k < sel.size(); ++k) {
          const double d = dsel[(size_t)t * sel.size() + k];
          const double tol = acc + d;
          row_tol = std::max(row_tol, tol);
          const double err = std::fabs(row[sel[k]] - ref[(size_t)t * sel.size() + k]);
          worst = std::max(worst, err);
          worst_excess = std::max(worst_excess, err - d);
          ASSERT_LE(err, tol) << "prompt " << i << " pos " << t << " id " << sel[k];
          if (!xsel.empty()) {
            const double ex = std::fabs(row[sel[k]] - xsel[(size_t)t * sel.size() + k]);
            worst_exact = std::max(worst_exact, ex);
            ++exact_checked;
            ASSERT_LE(ex, acc) << "exact weights: prompt " << i << " pos " << t << " id " << sel[k];
          }
        }
        if (gap[t] > 4 * row_tol) {  // a clear winner must be the same token
          int best = 0;
          for (int j = 1; j < V; ++j)
            if (row[j] > row[best]) best = j;
          EXPECT_EQ(best, am[t]) << "prompt " << i << " position " << t;
          ++argmax_checked;
        }
      }
    }
    EXPECT_GT(argmax_checked, 10);
    std::printf("%s: max |logit - loader| = %.3g (beyond the loader's own rounding: %.3g); "
                "argmax compared at %d positions; max |logit - loader with exact fp32 weights| = "
                "%.3g over %d logits\n",
                keep_w4 ? "w4" : "fp32", worst, worst_excess, argmax_checked, worst_exact,
                exact_checked);
  }
}

TEST(SmolLM2CompressedTensors, LogitsMatchTransformers) {
  const char* dir = std::getenv("AWQ_SMOLLM2_CT_DIR");
  const char* fx = std::getenv("AWQ_SMOLLM2_CT_LOGITS");
  if (!dir || !fx) GTEST_SKIP() << "AWQ_SMOLLM2_CT_DIR / AWQ_SMOLLM2_CT_LOGITS not set (make test sets them)";
  check_against_transformers(dir, fx, QuantizationInfo::Method::CompressedTensors);
}

TEST(SmolLM2AutoAwq, LogitsMatchAutoAwq029) {
  const char* dir = std::getenv("AWQ_SMOLLM2_AWQ_DIR");
  const char* fx = std::getenv("AWQ_SMOLLM2_AUTOAWQ_LOGITS");
  if (!dir || !fx) GTEST_SKIP() << "AWQ_SMOLLM2_AWQ_DIR / AWQ_SMOLLM2_AUTOAWQ_LOGITS not set (make test sets them)";
  check_against_transformers(dir, fx, QuantizationInfo::Method::Awq);
}

TEST(SmolLM2AutoAwq, LogitsMatchTransformers5Gptqmodel) {
  const char* dir = std::getenv("AWQ_SMOLLM2_AWQ_DIR");
  const char* fx = std::getenv("AWQ_SMOLLM2_AWQ_TF5_LOGITS");
  if (!dir || !fx) GTEST_SKIP() << "AWQ_SMOLLM2_AWQ_DIR / AWQ_SMOLLM2_AWQ_TF5_LOGITS not set (make test sets them)";
  check_against_transformers(dir, fx, QuantizationInfo::Method::Awq);
}

}  // namespace
}  // namespace awq
