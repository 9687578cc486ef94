// AWQ search: scale folding is exact before quantization; the grid search finds the best ratio
// on a layer with one salient channel; clipping reduces the output error.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "model/forward.h"
#include "common/test_util.h"
#include "quant/awq_search.h"

using namespace awq;

namespace {

Linear rand_linear(int in, int out, std::mt19937& g, float sd = 0.05f) {
  return test::random_linear(in, out, g, sd);
}

ModelConfig cfg_mha() {
  ModelConfig c = test::tiny_llama_config(128, 256, 1, 4, 4, 32, 10);
  return c;
}

// Independent quantize-dequantize of one group in double (spec §4, 4-bit asymmetric).
void ref_fake_quant_group(std::vector<double>& w) {
  double mn = w[0], mx = w[0];
  for (double v : w) mn = std::min(mn, v), mx = std::max(mx, v);
  const float s = (float)std::max(mx - mn, 1e-5) / 15.0f;
  // round the scale to fp16 like the stored scale (s is well inside fp16's normal range here)
  const double sh = std::ldexp(std::nearbyint(std::ldexp(s, 10 - std::ilogb(s))), std::ilogb(s) - 10);
  const double z = std::clamp(-std::nearbyint(mn / sh), 0.0, 15.0);
  for (double& v : w) v = (std::clamp(std::nearbyint(v / sh) + z, 0.0, 15.0) - z) * sh;
}

// One linear, K = 128 (one group), N = 16, on n = 256 tokens whose channel 5 carries
// activations 40x larger; y_ref = its output with the original weights.
struct SalientLinear {
  static constexpr int K = 128, N = 16, n = 256;
  Linear l;
  std::vector<float> x, x_mean, y_ref;
  SalientLinear() {
    std::mt19937 g(11);
    l = rand_linear(K, N, g, 0.02f);
    std::normal_distribution<float> d(0.0f, 1.0f);
    x.resize((size_t)n * K);
    for (int t = 0; t < n; ++t)
      for (int k = 0; k < K; ++k) x[(size_t)t * K + k] = d(g) * (k == 5 ? 40.0f : 1.0f);
    x_mean.assign(K, 0.0f);
    for (int t = 0; t < n; ++t)
      for (int k = 0; k < K; ++k) x_mean[k] += std::fabs(x[(size_t)t * K + k]) / n;
    run(y_ref);
  }
  void run(std::vector<float>& y) const {  // with l's current weights
    y.resize((size_t)n * N);
    linear_forward(l, x.data(), n, y.data());
  }
};

}  // namespace

TEST(ScaleFolding, BlockOutputUnchangedBeforeQuantization) {
  std::mt19937 g(7);
  ModelConfig c = cfg_mha();
  BlockWeights b;
  b.q = rand_linear(128, 128, g);
  b.k = rand_linear(128, 128, g);
  b.v = rand_linear(128, 128, g);
  b.o = rand_linear(128, 128, g);
  b.gate = rand_linear(128, 256, g);
  b.up = rand_linear(128, 256, g);
  b.down = rand_linear(256, 128, g);
  b.attn_norm.assign(128, 1.0f);
  b.mlp_norm.assign(128, 1.0f);
  std::normal_distribution<float> d(0.0f, 1.0f);
  std::uniform_real_distribution<float> us(0.25f, 4.0f);
  std::vector<float> x(2 * 40 * 128);
  for (auto& v : x) v = d(g);
  Rope rope;
  rope.build(c, 40);
  std::vector<float> y_ref = x;
  block_forward(c, b, rope, y_ref.data(), 2, 40);
  // Fold arbitrary positive scales into every group of the Llama table (v -> o included: MHA).
  for (const ScaleGroup& sg : c.arch->scale_groups) {
    std::vector<float> s(b.linear(sg.linears[0]).in);
    for (auto& v : s) v = us(g);
    if (sg.prev_kind == ScaleGroup::Prev::AttnNorm) apply_scales_to_norm(b.attn_norm, s);
    else if (sg.prev_kind == ScaleGroup::Prev::MlpNorm) apply_scales_to_norm(b.mlp_norm, s);
    else apply_scales_to_prev_linear(b.linear(sg.prev_linear), s);
    for (auto& n : sg.linears) apply_scales_to_linear(b.linear(n), s);
  }
  std::vector<float> y = x;
  block_forward(c, b, rope, y.data(), 2, 40);
  double max_err = 0, max_ref = 0;
  for (size_t i = 0; i < y.size(); ++i) {
    max_err = std::max(max_err, (double)std::fabs(y[i] - y_ref[i]));
    max_ref = std::max(max_ref, (double)std::fabs(y_ref[i]));
  }
  // Folding only reorders fp32 roundings: a few ulps of the largest value times the depth.
  EXPECT_LT(max_err, 1e-4 * max_ref) << "max err " << max_err;
  // And a real change of weights must be detected by the same comparison (the test can fail).
  b.up.weight[0] += 1.0f;
  std::vector<float> y2 = x;
  block_forward(c, b, rope, y2.data(), 2, 40);
  double diff = 0;
  for (size_t i = 0; i < y2.size(); ++i) diff = std::max(diff, (double)std::fabs(y2[i] - y_ref[i]));
  EXPECT_GT(diff, 1e-4 * max_ref);
}

TEST(ScaleSearch, SalientChannelPicksTheBestRatio) {
  SalientLinear f;
  const int K = SalientLinear::K, N = SalientLinear::N, n = SalientLinear::n;
  Linear& l = f.l;
  const std::vector<float>&x = f.x, &x_mean = f.x_mean, &y_ref = f.y_ref;
  auto run = [&](std::vector<float>& y) { f.run(y); };
  SearchOptions opt;
  opt.grid_stride = 1;  // every ratio
  opt.q.group_size = 128;
  const std::vector<float> w_mean = weight_channel_mean({&l}, 128);
  ScaleResult r = search_scales({&l}, x_mean, run, y_ref, opt, "test");
  ASSERT_FALSE(r.fallback);
  // Independent losses over the grid: double-precision quantizer and matmul written here.
  std::vector<double> ref_loss;
  for (int i = 0; i < opt.n_grid; ++i) {
    auto s = awq_scales_for_ratio(x_mean, w_mean, (float)i / opt.n_grid, true);
    std::vector<double> wq((size_t)N * K);
    for (int o = 0; o < N; ++o) {
      std::vector<double> row(K);
      for (int k = 0; k < K; ++k) row[k] = (double)l.weight[(size_t)o * K + k] * s[k];
      ref_fake_quant_group(row);
      for (int k = 0; k < K; ++k) wq[(size_t)o * K + k] = row[k] / s[k];
    }
    double loss = 0;
    for (int t = 0; t < n; ++t)
      for (int o = 0; o < N; ++o) {
        double a = 0;
        for (int k = 0; k < K; ++k) a += x[(size_t)t * K + k] * wq[(size_t)o * K + k];
        loss += std::pow(a - y_ref[(size_t)t * N + o], 2);
      }
    ref_loss.push_back(loss / ((double)n * N));
  }
  const int ref_best = (int)(std::min_element(ref_loss.begin(), ref_loss.end()) - ref_loss.begin());
  EXPECT_EQ(r.best_index, ref_best);
  EXPECT_GT(r.best_index, 0) << "a salient channel must get a scale > 1";
  EXPECT_LT(r.best_loss, 0.7 * r.losses[0]) << "AWQ must beat plain rounding here";
  EXPECT_GT(r.scales[5], 1.5f * r.scales[6]);
  // The weights are restored after the search.
  std::vector<float> y_after;
  run(y_after);
  EXPECT_EQ(y_after, y_ref);
}

TEST(ScaleSearch, CoarseToFineGridScoresTheCoarseRatiosThenTheBestOnesNeighbours) {
  // The salient-channel linear, searched over the full grid and with --grid-stride k.
  SalientLinear f;
  Linear& l = f.l;
  const std::vector<float>&x_mean = f.x_mean, &y_ref = f.y_ref;
  auto run = [&](std::vector<float>& y) { f.run(y); };
  SearchOptions opt;
  opt.grid_stride = 1;  // every ratio
  opt.q.group_size = 128;
  const ScaleResult full = search_scales({&l}, x_mean, run, y_ref, opt, "full");
  ASSERT_EQ((int)full.losses.size(), opt.n_grid);
  for (double v : full.losses) ASSERT_TRUE(std::isfinite(v));
  for (int k : {2, 3, 4}) {
    opt.grid_stride = k;
    const ScaleResult r = search_scales({&l}, x_mean, run, y_ref, opt, "coarse");
    ASSERT_EQ((int)r.losses.size(), opt.n_grid);
    int coarse_best = 0;
    for (int i = 0; i < opt.n_grid; i += k)
      if (full.losses[i] < full.losses[coarse_best]) coarse_best = i;
    int expect_best = -1, evaluated = 0;
    for (int i = 0; i < opt.n_grid; ++i) {
      const bool want = i % k == 0 || std::abs(i - coarse_best) < k;
      ASSERT_EQ(std::isfinite(r.losses[i]), want) << "k " << k << " ratio " << i;
      if (!want) continue;
      ++evaluated;
      EXPECT_EQ(r.losses[i], full.losses[i]) << "k " << k << " ratio " << i;
      if (expect_best < 0 || full.losses[i] < full.losses[expect_best]) expect_best = i;
    }
    EXPECT_EQ(r.best_index, expect_best) << k;
    EXPECT_EQ(r.scales, awq_scales_for_ratio(x_mean, weight_channel_mean({&l}, 128),
                                             (float)expect_best / opt.n_grid, true));
    EXPECT_LT(evaluated, opt.n_grid) << k;
  }
}

TEST(ClipSearch, ReducesOutputErrorOnAnOutlierGroup) {
  std::mt19937 g(3);
  const int K = 128, N = 8, n = 512;
  Linear l = rand_linear(K, N, g, 0.02f);
  for (int o = 0; o < N; ++o) l.weight[(size_t)o * K + 17] = 0.5f;  // one outlier weight per row
  std::normal_distribution<float> d(0.0f, 1.0f);
  std::vector<float> x((size_t)n * K);
  for (auto& v : x) v = d(g);
  SearchOptions opt;
  Linear unclipped = l;
  ClipResult cr = search_and_apply_clip(l, x.data(), n, opt);
  EXPECT_LT(cr.err_after, cr.err_before);
  // Independently: output error of Q(clipped W) vs Q(W), both against the original W.
  auto out_err = [&](const Linear& lw) {
    std::vector<double> err_sum(1, 0.0);
    double e = 0;
    for (int o = 0; o < N; ++o) {
      std::vector<double> row(lw.weight.begin() + (size_t)o * K, lw.weight.begin() + (size_t)(o + 1) * K);
      ref_fake_quant_group(row);
      for (int t = 0; t < n; ++t) {
        double a = 0, b = 0;
        for (int k = 0; k < K; ++k) {
          a += x[(size_t)t * K + k] * row[k];
          b += x[(size_t)t * K + k] * unclipped.weight[(size_t)o * K + k];
        }
        e += (a - b) * (a - b);
      }
    }
    return e / ((double)n * N);
  };
  const double e_clip = out_err(l), e_plain = out_err(unclipped);
  EXPECT_LT(e_clip, e_plain);
  for (int o = 0; o < N; ++o) EXPECT_LE(cr.max_val[o], 0.5f);
}

TEST(ScaleFolding, GqaTiedVoScalesKeepTheAttentionOutput) {
  // 6 query heads over 2 KV heads: one scale per v channel, shared by the 3 heads reading it.
  std::mt19937 g(5);
  ModelConfig c = cfg_mha();
  c.n_heads = 6;
  c.n_kv_heads = 2;
  c.head_dim = 16;
  c.hidden = 96;
  BlockWeights b;
  b.q = rand_linear(96, 96, g);
  b.k = rand_linear(96, 32, g);
  b.v = rand_linear(96, 32, g);
  b.o = rand_linear(96, 96, g);
  std::normal_distribution<float> d(0.0f, 1.0f);
  std::vector<float> x(2 * 24 * 96);
  for (auto& v : x) v = d(g);
  Rope rope;
  rope.build(c, 24);
  std::vector<float> y_ref(x.size()), y(x.size());
  attention_forward(c, b, rope, x.data(), 2, 24, y_ref.data());
  const std::vector<int> tie = gqa_o_tie(c);
  ASSERT_EQ(tie.size(), 96u);
  EXPECT_EQ(tie[0], 0);
  EXPECT_EQ(tie[2 * 16 + 5], 5);       // head 2 reads KV head 0
  EXPECT_EQ(tie[3 * 16 + 5], 16 + 5);  // head 3 reads KV head 1
  std::uniform_real_distribution<float> us(0.25f, 4.0f);
  std::vector<float> s(96);
  for (auto& v : s) v = us(g);
  tie_average(s, tie);  // tied: equal within each tie id
  for (int h = 0; h < 6; ++h) EXPECT_EQ(s[h * 16 + 7], s[(h / 3) * 3 * 16 + 7]);
  BlockWeights bs = b;
  apply_scales_to_prev_linear(bs.v, untie_scales(s, tie, 32));
  apply_scales_to_linear(bs.o, s);
  attention_forward(c, bs, rope, x.data(), 2, 24, y.data());
  double max_err = 0, max_ref = 0;
  for (size_t i = 0; i < y.size(); ++i) {
    max_err = std::max(max_err, (double)std::fabs(y[i] - y_ref[i]));
    max_ref = std::max(max_ref, (double)std::fabs(y_ref[i]));
  }
  EXPECT_LT(max_err, 1e-5 * max_ref);
  // Untied scales on o cannot be folded into v: the same comparison must see the difference.
  BlockWeights bu = b;
  std::vector<float> su = s;
  su[3 * 16 + 7] *= 3.0f;  // head 3 differs from heads 4, 5 on the same v channel
  apply_scales_to_prev_linear(bu.v, untie_scales(su, tie, 32));
  apply_scales_to_linear(bu.o, su);
  attention_forward(c, bu, rope, x.data(), 2, 24, y.data());
  double diff = 0;
  for (size_t i = 0; i < y.size(); ++i) diff = std::max(diff, (double)std::fabs(y[i] - y_ref[i]));
  EXPECT_GT(diff, 1e-3 * max_ref);
}

TEST(GramLoss, EqualsTheDirectOutputError) {
  std::mt19937 g(9);
  const int K = 200, N = 48, T = 5000;  // T > the 4096-token accumulation chunk
  Linear l = rand_linear(K, N, g);
  std::normal_distribution<float> d(0.0f, 1.0f);
  std::vector<float> x((size_t)T * K);
  for (auto& v : x) v = d(g);
  for (int t = 0; t < T; ++t) x[(size_t)t * K + 17] *= 30.0f;  // an outlier channel
  const std::vector<float> orig = l.weight;
  GramLoss gram(K);
  gram.add(x.data(), 3000);
  gram.add(x.data() + (size_t)3000 * K, T - 3000);
  EXPECT_EQ(gram.tokens(), T);
  QuantConfig q;
  q.w_bit = 4;
  q.group_size = 40;
  std::vector<float> y_ref((size_t)T * N), y((size_t)T * N);
  linear_forward(l, x.data(), T, y_ref.data());
  std::vector<float> s(K, 1.0f);
  s[17] = 3.0f;
  SearchOptions so;
  so.q = q;
  quantize_with_scales(l, s, so);
  linear_forward(l, x.data(), T, y.data());
  const double direct = mse(y_ref, y), via_gram = gram(l, orig);
  EXPECT_GT(direct, 0.0);
  EXPECT_NEAR(via_gram, direct, 1e-4 * direct);
  l.weight = orig;
  EXPECT_EQ(gram(l, orig), 0.0);
}

// The Gram clip search scores candidates exactly on all tokens: with one group per row
// (K == G) its reported error equals the direct output error of the clipped-then-quantized
// weight, the asymmetric candidate set (a superset) never does worse than the symmetric one,
// and on groups whose outlier is on one side only it does strictly better.
TEST(ClipSearch, GramAsymIsExactAndNoWorseThanSymmetric) {
  std::mt19937 g(11);
  const int K = 64, N = 16, T = 700;
  Linear l = rand_linear(K, N, g, 0.02f);
  for (int o = 0; o < N; ++o) l.weight[(size_t)o * K + (o % K)] = 0.3f + 0.02f * o;  // + outlier
  std::normal_distribution<float> d(0.0f, 1.0f);
  std::vector<float> x((size_t)T * K);
  for (auto& v : x) v = d(g);
  for (int t = 0; t < T; ++t) x[(size_t)t * K + 5] *= 8.0f;  // a salient input channel
  std::vector<float> s(K, 1.0f);
  s[5] = 2.0f;  // inputs were divided by s after the Gram was accumulated
  GramLoss gram(x.data(), T, K);
  std::vector<float> xs = x;
  for (int t = 0; t < T; ++t)
    for (int k = 0; k < K; ++k) xs[(size_t)t * K + k] /= s[k];
  SearchOptions opt;
  opt.q.group_size = K;
  // Direct error of Q(lw) against the unclipped weight, in double.
  const Linear orig = l;
  auto out_err = [&](const Linear& lw) {
    double e = 0;
    for (int o = 0; o < N; ++o) {
      std::vector<double> row(lw.weight.begin() + (size_t)o * K, lw.weight.begin() + (size_t)(o + 1) * K);
      ref_fake_quant_group(row);
      for (int t = 0; t < T; ++t) {
        double a = 0;
        for (int k = 0; k < K; ++k) a += xs[(size_t)t * K + k] * (row[k] - orig.weight[(size_t)o * K + k]);
        e += a * a;
      }
    }
    return e / ((double)T * N * 1);
  };
  Linear sym = l, asym = l;
  opt.clip_mode = SearchOptions::ClipMode::Gram;
  const ClipResult rs = search_and_apply_clip_gram(sym, gram, &s, opt);
  opt.clip_mode = SearchOptions::ClipMode::GramAsym;
  const ClipResult ra = search_and_apply_clip_gram(asym, gram, &s, opt);
  const double e_plain = out_err(orig), e_sym = out_err(sym), e_asym = out_err(asym);
  EXPECT_NEAR(rs.err_before, e_plain, 1e-3 * e_plain);
  EXPECT_NEAR(rs.err_after, e_sym, 1e-3 * e_sym);
  EXPECT_NEAR(ra.err_after, e_asym, 1e-3 * e_asym);
  EXPECT_LT(e_sym, e_plain);
  EXPECT_LT(e_asym, 0.95 * e_sym);  // the min side can shrink without the outlier's side

  // --grid-clip coarse: the pairs on every other shrink step, a subset of asym's candidates
  // and a superset of sym's, so its exact error lies between them.
  Linear coarse = l;
  opt.clip_pair_stride = 2;
  const ClipResult rc = search_and_apply_clip_gram(coarse, gram, &s, opt);
  const double e_coarse = out_err(coarse);
  EXPECT_NEAR(rc.err_after, e_coarse, 1e-3 * e_coarse);
  EXPECT_LE(e_asym, e_coarse * (1 + 1e-3));  // float picks vs double errors
  EXPECT_LE(e_coarse, e_sym * (1 + 1e-3));
  EXPECT_LT(e_coarse, 0.99 * e_sym);  // its pairs still let the min side shrink alone
  SearchOptions named;
  ASSERT_TRUE(set_grid_clip(named, "coarse"));
  EXPECT_EQ(named.grid_clip_pair_stride, 2);
  EXPECT_EQ(grid_clip_name(named), "coarse");
  EXPECT_FALSE(set_grid_clip(named, "fine"));
}

// Joint clipping: on inputs whose channels are correlated across groups (a shared latent
// factor, as LLM activations have), the per-group choice ignores the cross-group terms of the
// row's output error. Joint must report the exact whole-row error (checked against a direct
// double evaluation, several groups per row), never do worse than GramAsym, and here do
// strictly better.
TEST(ClipSearch, JointIsExactOverGroupsAndBeatsPerGroupChoice) {
  std::mt19937 g(23);
  const int K = 256, G = 64, N = 24, T = 1500;
  Linear l = rand_linear(K, N, g, 0.02f);
  for (int o = 0; o < N; ++o) l.weight[(size_t)o * K + (7 * o) % K] = 0.25f + 0.01f * o;
  std::normal_distribution<float> d(0.0f, 1.0f);
  std::vector<float> x((size_t)T * K), mix(K);
  for (auto& v : mix) v = d(g);
  for (int t = 0; t < T; ++t) {
    const float z = d(g) * 3.0f;  // latent factor shared by every channel
    for (int k = 0; k < K; ++k) x[(size_t)t * K + k] = 0.3f * d(g) + z * mix[k] + 0.5f;
  }
  GramLoss gram(x.data(), T, K);
  SearchOptions opt;
  opt.q.group_size = G;
  const Linear orig = l;
  auto out_err = [&](const Linear& lw) {  // mean over tokens, per (row, group) like err_after
    double e = 0;
    for (int o = 0; o < N; ++o) {
      std::vector<double> row(K);
      for (int g0 = 0; g0 < K; g0 += G) {
        std::vector<double> grp(lw.weight.begin() + (size_t)o * K + g0,
                                lw.weight.begin() + (size_t)o * K + g0 + G);
        ref_fake_quant_group(grp);
        std::copy(grp.begin(), grp.end(), row.begin() + g0);
      }
      for (int t = 0; t < T; ++t) {
        double a = 0;
        for (int k = 0; k < K; ++k) a += x[(size_t)t * K + k] * (row[k] - orig.weight[(size_t)o * K + k]);
        e += a * a;
      }
    }
    return e / ((double)T * N * (K / G));
  };
  Linear per_group = l, joint = l;
  opt.clip_mode = SearchOptions::ClipMode::GramAsym;
  search_and_apply_clip_gram(per_group, gram, nullptr, opt);
  opt.clip_mode = SearchOptions::ClipMode::Joint;
  const ClipResult rj = search_and_apply_clip_gram(joint, gram, nullptr, opt);
  const double e_plain = out_err(orig), e_pg = out_err(per_group), e_joint = out_err(joint);
  EXPECT_NEAR(rj.err_before, e_plain, 2e-3 * e_plain);
  EXPECT_NEAR(rj.err_after, e_joint, 2e-3 * e_joint);
  EXPECT_LE(e_joint, e_pg * (1 + 1e-6));
  EXPECT_LT(e_joint, 0.9 * e_pg);
  EXPECT_LT(e_pg, e_plain);
  // max_val reports the upper clip bound actually applied to each group.
  for (int o = 0; o < N; ++o)
    for (int gi = 0; gi < K / G; ++gi) {
      float mx = -1e30f;
      for (int k = 0; k < G; ++k) mx = std::max(mx, joint.weight[(size_t)o * K + gi * G + k]);
      EXPECT_GE(rj.max_val[(size_t)o * (K / G) + gi], mx);
    }
}

// Clip-aware scale search: with the clipping search run on W * s inside the grid, each ratio's
// loss is the loss of the weights the pipeline finally writes (clip, then quantize). So the
// chosen ratio's loss must equal an independent evaluation of "scale, clip, quantize" at that
// ratio, and be no worse than clipping after a plain-RTN grid search (the reference order).
TEST(ScaleSearch, ClipAwareScoresTheFinalWeightsAndIsNoWorse) {
  std::mt19937 g(31);
  const int K = 256, N = 32, T = 1200, G = 64;
  Linear l = rand_linear(K, N, g, 0.02f);
  for (int o = 0; o < N; ++o) l.weight[(size_t)o * K + (11 * o) % K] = 0.2f;  // weight outliers
  std::normal_distribution<float> d(0.0f, 1.0f);
  std::vector<float> x((size_t)T * K);
  for (int t = 0; t < T; ++t)
    for (int k = 0; k < K; ++k) x[(size_t)t * K + k] = d(g) * (k % 37 == 3 ? 12.0f : 1.0f);
  std::vector<float> x_mean(K, 0.0f);
  for (int t = 0; t < T; ++t)
    for (int k = 0; k < K; ++k) x_mean[k] += std::fabs(x[(size_t)t * K + k]) / T;
  const GramLoss gram(x.data(), T, K);
  SearchOptions opt;
  opt.grid_stride = 1;  // every ratio
  opt.q.group_size = G;
  opt.clip_mode = SearchOptions::ClipMode::GramAsym;
  const Linear orig = l;
  const LossFn loss = [&] { return gram(l, orig.weight); };
  // Scale, clip (on inputs x / s), quantize, unscale; loss from the Gram (tested above).
  auto final_loss = [&](const std::vector<float>& s) {
    Linear w = orig;
    apply_scales_to_linear(w, s);
    search_and_apply_clip_gram(w, gram, &s, opt);
    fake_quantize(w.weight.data(), N, K, opt.q);
    for (int o = 0; o < N; ++o)
      for (int k = 0; k < K; ++k) w.weight[(size_t)o * K + k] /= s[k];
    return gram(w, orig.weight);
  };
  const PrepareFn clip = [&](int, Linear& w, const std::vector<float>& s) {
    search_and_apply_clip_gram(w, gram, &s, opt);
  };
  const ScaleResult plain = search_scales_loss({&l}, x_mean, loss, opt, "plain");
  EXPECT_EQ(l.weight, orig.weight);
  const ScaleResult aware = search_scales_loss({&l}, x_mean, loss, opt, "aware", nullptr, clip);
  EXPECT_EQ(l.weight, orig.weight) << "weights restored after the search";
  ASSERT_FALSE(aware.fallback);
  const double at_aware = final_loss(aware.scales), at_plain = final_loss(plain.scales);
  EXPECT_NEAR(aware.best_loss, at_aware, 1e-4 * at_aware);
  EXPECT_LE(at_aware, at_plain * (1 + 1e-6));
  // Clipping inside the grid lowers every ratio's loss below plain rounding's.
  for (int i = 0; i < opt.n_grid; ++i) EXPECT_LT(aware.losses[i], plain.losses[i]) << i;
}
