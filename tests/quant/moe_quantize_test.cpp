// Mixture-of-experts quantization on the tiny Mixtral, Qwen 3-MoE and Qwen 2-MoE (shared expert) fixtures
// (scripts/gen_arch_fixtures.py: a massive activation channel and salient MLP-input channels;
// block 0's last expert is never routed to):
//  - AWQ beats RTN on the output error of every MoE block (the block's input from the fp32
//    model's residual stream, each model's own folded norm and router);
//  - the folded router routes as the original (its columns carry the scales the norm lost);
//  - the checkpoint layout vLLM loads: per-expert modules, fp16 router, router in
//    modules_to_not_convert;
//  - an expert with no calibration tokens is quantized without scaling or clipping (its
//    down_proj equals RTN's bit for bit) and is reported;
//  - an expert's statistics come from the tokens routed to it only (MoeRecord, MoeExpertStats).
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <algorithm>
#include <map>
#include <memory>
#include <random>

#include "io/safetensors.h"
#include "io/tokenizer.h"
#include "kernels/w4.h"
#include "model/forward.h"
#include "quant/calibration.h"
#include "quant/quantize.h"

using namespace awq;
namespace fs = std::filesystem;

namespace {

struct TmpDir {
  fs::path p;
  TmpDir() {
    p = fs::temp_directory_path() /
        ("awq_moe_q_" + std::to_string(::getpid()) + "_" + std::to_string(std::random_device{}()));
    fs::create_directories(p);
  }
  ~TmpDir() { fs::remove_all(p); }
};

fs::path fixture(const std::string& family) {
  return fs::path(AWQ_SOURCE_DIR) / "tests/fixtures/model" / ("tiny_" + family);
}

fs::path make_src(const fs::path& dir, const std::string& family) {
  fs::create_directories(dir);
  for (const char* f : {"config.json", "model.safetensors"}) fs::copy_file(fixture(family) / f, dir / f);
  fs::copy_file(fs::path(AWQ_SOURCE_DIR) / "tests/fixtures/tokenizer/tiny_llama3/tokenizer.json",
                dir / "tokenizer.json");
  return dir;
}

std::string calib_text() {
  std::string s;
  std::mt19937 g(9);
  const char* words[] = {"the", "model", "weights", "are", "quantized", "to", "four", "bits",
                         "with", "activation", "aware", "scales", "and", "clipping", "of", "groups"};
  for (int i = 0; i < 16; ++i) {
    for (int j = 0; j < 40; ++j) s += std::string(words[g() % 16]) + (j % 11 == 10 ? ".\n" : " ");
    s += "\n\n";
  }
  return s;
}

double mse_of(const std::vector<float>& a, const std::vector<float>& b) {
  double e = 0;
  for (size_t i = 0; i < a.size(); ++i) e += (double)(a[i] - b[i]) * (a[i] - b[i]);
  return e / (double)a.size();
}

// Quantized once per family (AWQ and RTN), shared by the tests of that family.
struct Quantized {
  TmpDir td;
  fs::path src, awq, rtn;
  QuantizeReport rep_awq;
  std::vector<int32_t> calib_tokens;
  int T = 0;
};

// Each ctest case is its own process, so every quantization here is paid per test: the MoE
// checks share one test per family.
Quantized& quantized(const std::string& family, bool with_rtn = true) {
  static std::map<std::string, std::unique_ptr<Quantized>> cache;
  auto& q = cache[family];
  if (q) return *q;
  q = std::make_unique<Quantized>();
  q->src = make_src(q->td.p / "src", family);
  const fs::path calib = q->td.p / "calib.txt";
  std::ofstream(calib) << calib_text();
  QuantizeOptions o;
  o.search.q.group_size = 32;
  o.calib_path = calib.string();
  o.n_samples = 64;
  o.seqlen = 128;
  o.progress = false;
  q->awq = q->td.p / "awq";
  q->rtn = q->td.p / "rtn";
  auto r = quantize_model(q->src.string(), q->awq.string(), o);
  EXPECT_TRUE(r.ok()) << r.error().message;
  if (r.ok()) q->rep_awq = *r;
  if (with_rtn) {
    o.method = QuantizeOptions::Method::Rtn;
    auto r2 = quantize_model(q->src.string(), q->rtn.string(), o);
    EXPECT_TRUE(r2.ok()) << r2.error().message;
  }
  // the calibration tokens the quantizer saw
  auto tok = Tokenizer::load(q->src.string());
  auto texts = load_calibration_texts(calib.string());
  EXPECT_TRUE(tok.ok() && texts.ok());
  if (tok.ok() && texts.ok()) {
    auto cb = make_calibration_blocks(*texts, *tok, o.n_samples, o.seqlen);
    EXPECT_TRUE(cb.ok());
    if (cb.ok()) {
      q->calib_tokens = cb->tokens;
      q->T = cb->seqlen;
    }
  }
  return *q;
}

}  // namespace

void check_unpack(const std::string& family);

class MoeQuantize : public ::testing::TestWithParam<std::string> {};

void check_blocks_and_routing(const std::string& family) {
  SCOPED_TRACE("blocks and routing");
  Quantized& q = quantized(family);
  ASSERT_FALSE(q.calib_tokens.empty());
  auto fp = load_model(q.src.string());
  auto awq = load_model(q.awq.string());
  auto rtn = load_model(q.rtn.string());
  ASSERT_TRUE(fp.ok() && awq.ok() && rtn.ok());
  const ModelConfig& c = fp->cfg;
  ASSERT_TRUE(c.arch->moe);
  const int H = c.hidden, T = q.T;
  const int n_seq = std::min<int>(4, (int)q.calib_tokens.size() / T);
  const int64_t n = (int64_t)n_seq * T;
  std::vector<float> x((size_t)n * H), xn((size_t)n * H), tmp((size_t)n * H);
  embed_tokens(*fp, q.calib_tokens.data(), n, x.data());
  Rope rope;
  rope.build(c, T);
  for (int l = 0; l < c.n_layers; ++l) {
    SCOPED_TRACE("layer " + std::to_string(l));
    const BlockWeights& b = fp->blocks[l];
    // x after the attention half of the fp32 block: the MoE block's input
    rms_norm(x.data(), b.attn_norm.data(), n, H, c.rms_eps, xn.data());
    attention_forward(c, b, rope, xn.data(), n_seq, T, tmp.data());
    add_residual(c, b.post_attn_norm, x.data(), tmp.data(), n);
    auto moe_out = [&](const Model& m, std::vector<int32_t>* sel) {
      std::vector<float> in((size_t)n * H), out((size_t)n * H);
      rms_norm(x.data(), m.blocks[l].mlp_norm.data(), n, H, c.rms_eps, in.data());
      moe_forward(m.cfg, m.blocks[l], in.data(), n, out.data());
      std::vector<float> w;
      if (sel) moe_route(m.cfg, m.blocks[l].router, in.data(), n, *sel, w);
      return out;
    };
    std::vector<int32_t> sel_fp, sel_awq, sel_rtn, sel_uncomp;
    const auto y_fp = moe_out(*fp, &sel_fp), y_awq = moe_out(*awq, &sel_awq),
               y_rtn = moe_out(*rtn, &sel_rtn);
    {  // AutoAWQ's fold: the norm divided by the scales, the router left as it was
      std::vector<float> in((size_t)n * H), w;
      rms_norm(x.data(), awq->blocks[l].mlp_norm.data(), n, H, c.rms_eps, in.data());
      moe_route(c, b.router, in.data(), n, sel_uncomp, w);
    }
    const double ea = mse_of(y_awq, y_fp), er = mse_of(y_rtn, y_fp);
    std::printf("%s layer %d: MoE block output mse AWQ %.4g, RTN %.4g\n", family.c_str(), l,
                ea, er);
    EXPECT_GT(er, 0.0);
    EXPECT_LT(ea, er) << "AWQ does not beat RTN on this MoE block";
    // routing of the folded model (norm / s, router columns * s) = the original's, up to the
    // router's fp16 rounding: compare the expert sets token by token
    auto n_same = [&](const std::vector<int32_t>& other) {
      int64_t same = 0;
      for (int64_t t = 0; t < n; ++t) {
        std::vector<int32_t> a(sel_fp.begin() + t * c.top_k, sel_fp.begin() + (t + 1) * c.top_k),
            bb(other.begin() + t * c.top_k, other.begin() + (t + 1) * c.top_k);
        std::sort(a.begin(), a.end());
        std::sort(bb.begin(), bb.end());
        same += a == bb;
      }
      return same;
    };
    const int64_t same = n_same(sel_awq), same_uncomp = n_same(sel_uncomp);
    std::printf("  tokens keeping their experts: %lld of %lld (uncompensated router: %lld)\n",
                (long long)same, (long long)n, (long long)same_uncomp);
    EXPECT_GE((double)same / n, 0.98) << same << " of " << n << " tokens keep their experts";
    EXPECT_LT(same_uncomp, same) << "the router compensation should matter here";
    // next layer's input: the rest of the fp32 block
    rms_norm(x.data(), b.mlp_norm.data(), n, H, c.rms_eps, xn.data());
    mlp_forward(c, b, xn.data(), n, tmp.data());
    add_residual(c, b.post_mlp_norm, x.data(), tmp.data(), n);
  }
  // the W4 kernels on the same checkpoint: the dequantized forward. Experts see few gathered
  // rows, so they run the decode kernel, whose default int8 activations are ~0.3-1 % off per
  // output (kernels/w4.h) and can flip a near-tied routing; compare with fp32 activations.
  const W4Decode mode = w4_decode_mode();
  w4_set_decode_mode(W4Decode::F32);
  LoadOptions lo;
  lo.keep_w4 = true;
  lo.lm_head = LmHeadFormat::F16;
  auto w4 = load_model(q.awq.string(), lo);
  ASSERT_TRUE(w4.ok()) << w4.error().message;
  const int Tq = 32;
  std::vector<float> h1((size_t)Tq * H), h2((size_t)Tq * H);
  forward_hidden(*awq, q.calib_tokens.data(), 1, Tq, h1.data());
  forward_hidden(*w4, q.calib_tokens.data(), 1, Tq, h2.data());
  double worst = 0, scale = 1;
  for (size_t i = 0; i < h1.size(); ++i) {
    worst = std::max(worst, (double)std::fabs(h1[i] - h2[i]));
    scale = std::max(scale, (double)std::fabs(h1[i]));
  }
  w4_set_decode_mode(mode);
  EXPECT_LT(worst / scale, 1e-4) << "W4 kernels vs dequantized fp32";
}

void check_layout(const std::string& family) {
  SCOPED_TRACE("layout");
  Quantized& q = quantized(family);
  auto st = SafeTensors::open(q.awq.string());
  ASSERT_TRUE(st.ok()) << st.error().message;
  auto cfg = load_model_config(q.awq.string());
  ASSERT_TRUE(cfg.ok()) << cfg.error().message;
  const Architecture& a = *cfg->arch;
  const std::string router = a.router_prefix(1) + ".weight";
  const TensorView* r = st->find(router);
  ASSERT_NE(r, nullptr) << router;
  EXPECT_EQ(r->dtype, DType::F16);
  EXPECT_EQ(st->find(a.router_prefix(1) + ".qweight"), nullptr);
  for (const char* n : {"gate_proj", "up_proj", "down_proj"}) {
    const std::string p = a.expert_prefix(1, cfg->n_experts - 1, n);
    for (const char* t : {".qweight", ".qzeros", ".scales"}) EXPECT_NE(st->find(p + t), nullptr) << p + t;
  }
  EXPECT_NE(st->find(family == "mixtral" ? "model.layers.0.block_sparse_moe.experts.3.w1.qweight"
                                             : "model.layers.0.mlp.experts.3.gate_proj.qweight"),
            nullptr);
  const auto& skip = cfg->quant.modules_to_not_convert;
  const std::string want = family == "mixtral" ? "gate" : "mlp.gate";
  EXPECT_NE(std::find(skip.begin(), skip.end(), want), skip.end()) << want;
  if (a.has_shared_expert()) {  // Qwen 2-MoE: the shared expert quantized, its gate fp16
    const TensorView* g = st->find(a.shared_gate_prefix(1) + ".weight");
    ASSERT_NE(g, nullptr);
    EXPECT_EQ(g->dtype, DType::F16);
    EXPECT_EQ(g->shape, (std::vector<int64_t>{1, cfg->hidden}));
    for (const char* n : {"gate_proj", "up_proj", "down_proj"})
      EXPECT_NE(st->find(a.shared_prefix(1, n) + ".qweight"), nullptr) << n;
    EXPECT_NE(std::find(skip.begin(), skip.end(), "shared_expert_gate"), skip.end());
  }
}

void check_expert_without_tokens(const std::string& family) {
  SCOPED_TRACE("expert without tokens");
  Quantized& q = quantized(family);
  auto cfg = load_model_config(q.src.string());
  ASSERT_TRUE(cfg.ok());
  const int E = cfg->n_experts, last = E - 1;
  int64_t tokens_last = -1, routed = 0, with_tokens = 0;
  for (const ExpertReport& e : q.rep_awq.experts) {
    if (e.layer == 0 && e.expert == last) tokens_last = e.tokens;
    routed += e.tokens;
    with_tokens += e.tokens > 0;
  }
  ASSERT_EQ(q.rep_awq.experts.size(), (size_t)cfg->n_layers * E);
  EXPECT_EQ(tokens_last, 0) << "block 0's last expert should get no calibration token";
  EXPECT_EQ(routed, (int64_t)q.rep_awq.n_blocks * q.T * cfg->top_k * cfg->n_layers);
  EXPECT_GT(with_tokens, E);  // the others do get tokens
  bool warned = false;
  for (const auto& w : q.rep_awq.warnings)
    warned |= w.find("layer 0 expert " + std::to_string(last) + ": no calibration tokens") !=
              std::string::npos;
  EXPECT_TRUE(warned);
  auto awq = load_model(q.awq.string());
  auto rtn = load_model(q.rtn.string());
  ASSERT_TRUE(awq.ok() && rtn.ok());
  // no up -> down scale, no clipping: its down_proj is RTN's, bit for bit
  EXPECT_EQ(awq->blocks[0].experts[last].down.weight, rtn->blocks[0].experts[last].down.weight);
  // while an expert with tokens was scaled or clipped
  EXPECT_NE(awq->blocks[0].experts[0].down.weight, rtn->blocks[0].experts[0].down.weight);
}

TEST_P(MoeQuantize, AwqBeatsRtnPerBlockKeepsRoutingLayoutAndExpertsWithoutTokens) {
  check_blocks_and_routing(GetParam());
  check_layout(GetParam());
  check_expert_without_tokens(GetParam());
  check_unpack(GetParam());
}

INSTANTIATE_TEST_SUITE_P(Tiny, MoeQuantize, ::testing::Values("mixtral", "qwen3_moe", "qwen2_moe"));

// The record the quantizer's per-expert statistics are built from: expert e's rows are exactly
// the tokens whose top-k contains e, its down_proj inputs are computed from those tokens, and
// MoeExpertStats averages over them only.
TEST(MoeStats, ExpertStatisticsComeFromItsOwnTokens) {
  auto m = load_model(fixture("mixtral").string());
  ASSERT_TRUE(m.ok()) << m.error().message;
  const ModelConfig& c = m->cfg;
  const BlockWeights& b = m->blocks[1];
  const int H = c.hidden, I = c.moe_intermediate, n = 96;
  std::mt19937 g(5);
  std::normal_distribution<float> nd;
  std::vector<float> xn((size_t)n * H), out((size_t)n * H);
  for (auto& v : xn) v = nd(g);
  MoeRecord rec;
  moe_forward(c, b, xn.data(), n, out.data(), &rec);
  std::vector<int32_t> sel;
  std::vector<float> w;
  moe_route(c, b.router, xn.data(), n, sel, w);
  MoeExpertStats stats(c.n_experts, I);
  stats.add(rec);
  int checked = 0;
  for (int e = 0; e < c.n_experts; ++e) {
    SCOPED_TRACE(e);
    std::vector<int32_t> mine;
    for (int t = 0; t < n; ++t)
      for (int k = 0; k < c.top_k; ++k)
        if (sel[(size_t)t * c.top_k + k] == e) mine.push_back(t);
    EXPECT_EQ(rec.rows[e], mine);
    EXPECT_EQ(stats.tokens(e), (int64_t)mine.size());
    ASSERT_EQ(rec.down_in[e].size(), mine.size() * I);
    if (mine.empty()) {
      EXPECT_TRUE(stats.mean(e).empty());
      continue;
    }
    // down_proj input of every token, through expert e (own tokens or not)
    std::vector<float> gt((size_t)n * I), up((size_t)n * I);
    linear_forward(b.experts[e].gate, xn.data(), n, gt.data());
    linear_forward(b.experts[e].up, xn.data(), n, up.data());
    for (size_t i = 0; i < gt.size(); ++i) up[i] *= gt[i] / (1.0f + std::exp(-gt[i]));
    std::vector<double> own(I, 0.0), all(I, 0.0);
    for (int t = 0; t < n; ++t)
      for (int j = 0; j < I; ++j) all[j] += std::fabs(up[(size_t)t * I + j]) / n;
    for (size_t i = 0; i < mine.size(); ++i)
      for (int j = 0; j < I; ++j) {
        const float v = up[(size_t)mine[i] * I + j];
        EXPECT_NEAR(rec.down_in[e][i * I + j], v, 1e-4f * (1.0f + std::fabs(v)));
        own[j] += std::fabs(v) / mine.size();
      }
    const std::vector<float> mean = stats.mean(e);
    double diff_all = 0;
    for (int j = 0; j < I; ++j) {
      EXPECT_NEAR(mean[j], own[j], 1e-4 * (1 + own[j]));
      diff_all = std::max(diff_all, std::fabs(mean[j] - all[j]) / (1e-6 + all[j]));
    }
    if ((int)mine.size() < n) {
      EXPECT_GT(diff_all, 1e-2) << "the mean over all tokens";
    }
    ++checked;
  }
  EXPECT_GE(checked, 2);
}

// The checkpoints of the fused (Phi-3) and MoE families unpack the way AutoAWQ does
// (scripts/check_awq_format.py: numpy only) to exactly the weights our loader dequantizes: the
// joined qkv_proj / gate_up_proj rows and every expert's modules.
void check_unpack(const std::string& family) {
  SCOPED_TRACE("numpy unpack");
  if (std::system("python3 -c 'import numpy, safetensors' >/dev/null 2>&1") != 0) {
    if (std::getenv("CI")) FAIL() << "CI needs python3 with numpy and safetensors";
    GTEST_SKIP() << "python3 with numpy + safetensors not available";
  }
  Quantized& q = quantized(family, family != "phi3");
  auto m = load_model(q.awq.string());
  ASSERT_TRUE(m.ok()) << m.error().message;
  const Architecture& a = *m->cfg.arch;
  const fs::path ref = q.td.p / "reference";
  fs::create_directories(ref);
  int n_modules = 0;
  {
    SafeTensorsWriter w(ref.string());
    auto add = [&](const std::string& prefix, std::vector<const Linear*> parts) {
      std::vector<float> W;
      int N = 0;
      for (const Linear* l : parts) {
        W.insert(W.end(), l->weight.begin(), l->weight.end());
        N += l->out;
      }
      ASSERT_TRUE(w.add_f32(prefix + ".weight", DType::F32, {N, parts[0]->in}, W.data()).ok());
      ++n_modules;
    };
    for (int l = 0; l < m->cfg.n_layers; ++l) {
      const BlockWeights& b = m->blocks[l];
      for (const LinearName& ln : a.linears) {
        int part = 0;
        const FusedLinear* f = a.fused_of(ln.name, &part);
        if (f && part != 0) continue;
        std::vector<const Linear*> ls;
        if (f)
          for (const auto& p : f->parts) ls.push_back(&b.linear(p));
        else
          ls.push_back(&b.linear(ln.name));
        add(a.linear_prefix(l, ln.name), ls);
      }
      for (int e = 0; e < (int)b.experts.size(); ++e)
        for (const char* n : {"gate_proj", "up_proj", "down_proj"})
          add(a.expert_prefix(l, e, n), {&const_cast<ExpertWeights&>(b.experts[e]).linear(n)});
      if (a.has_shared_expert())
        for (const char* n : {"gate_proj", "up_proj", "down_proj"})
          add(a.shared_prefix(l, n), {&const_cast<ExpertWeights&>(b.shared).linear(n)});
    }
    ASSERT_TRUE(w.finish().ok());
  }
  EXPECT_EQ(n_modules, m->cfg.n_layers * (a.fused.empty() ? 4 + 3 * m->cfg.n_experts +
                                                              3 * a.has_shared_expert()
                                                        : 4));
  const std::string cmd = std::string("python3 ") + AWQ_SOURCE_DIR +
                          "/scripts/check_awq_format.py '" + q.awq.string() + "' --reference '" +
                          (ref / "model.safetensors").string() + "'";
  const int rc = std::system(cmd.c_str());
  EXPECT_EQ(WIFEXITED(rc) ? WEXITSTATUS(rc) : -1, 0);
}

TEST(FamilyAwqFormat, Phi3FusedModulesUnpackToOurDequantizedWeights) { check_unpack("phi3"); }
