// `awq quantize` on every tiny family fixture (tests/fixtures/model/tiny_*): the AWQ and RTN
// checkpoints load back (fp32-dequantized and with the W4 kernels), the W4 forward matches the
// dequantized one, and the AWQ model (scales folded into Gemma's (1 + w) norms, Qwen 3's
// pre-norms, ...) stays within 10% of RTN's output error. These random fixtures have no salient
// channels, so AWQ has little to gain (measured: Mistral AWQ < RTN, Qwen 3 and Gemma 3 AWQ 1-2%
// above RTN); a fold applied to the stored w instead of the effective 1 + w changes the function
// and is far outside that bound. (The salient-channel AWQ < RTN check is quantize_test.cpp.)
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>

#include "io/safetensors.h"
#include "model/forward.h"
#include "quant/quantize.h"

using namespace awq;
namespace fs = std::filesystem;

namespace {

struct TmpDir {
  fs::path p;
  TmpDir() {
    p = fs::temp_directory_path() /
        ("awq_arch_q_" + std::to_string(::getpid()) + "_" + std::to_string(std::random_device{}()));
    fs::create_directories(p);
  }
  ~TmpDir() { fs::remove_all(p); }
};

fs::path make_src(const fs::path& dir, const std::string& family) {
  const fs::path fx = fs::path(AWQ_SOURCE_DIR) / "tests/fixtures/model" / ("tiny_" + family);
  fs::create_directories(dir);
  for (const char* f : {"config.json", "model.safetensors"}) fs::copy_file(fx / f, dir / f);
  fs::copy_file(fs::path(AWQ_SOURCE_DIR) / "tests/fixtures/tokenizer/tiny_llama3/tokenizer.json",
                dir / "tokenizer.json");
  return dir;
}

fs::path make_calib(const fs::path& p) {
  std::string s;
  std::mt19937 g(9);
  const char* words[] = {"the", "model", "weights", "are", "quantized", "to", "four", "bits",
                         "with", "activation", "aware", "scales", "and", "clipping", "of", "groups"};
  for (int i = 0; i < 16; ++i) {
    for (int j = 0; j < 40; ++j) s += std::string(words[g() % 16]) + (j % 11 == 10 ? ".\n" : " ");
    s += "\n\n";
  }
  std::ofstream(p) << s;
  return p;
}

std::vector<float> logits_of(const Model& m, const std::vector<int32_t>& toks, int n_seq, int T) {
  std::vector<float> h(toks.size() * m.cfg.hidden), lg(toks.size() * m.cfg.vocab);
  forward_hidden(m, toks.data(), n_seq, T, h.data());
  lm_head_forward(m, h.data(), (int64_t)toks.size(), lg.data());
  return lg;
}

double sq_err(const std::vector<float>& a, const std::vector<float>& b) {
  double e = 0;
  for (size_t i = 0; i < a.size(); ++i) e += (double)(a[i] - b[i]) * (a[i] - b[i]);
  return e;
}

}  // namespace

class FamilyQuantize : public ::testing::TestWithParam<std::string> {};

TEST_P(FamilyQuantize, AwqLoadsRunsAndStaysNearRtn) {
  TmpDir td;
  const fs::path src = make_src(td.p / "src", GetParam());
  QuantizeOptions o;
  o.search.q.group_size = 32;
  o.calib_path = make_calib(td.p / "calib.txt").string();
  o.n_samples = 64;
  o.seqlen = 128;
  o.progress = false;
  auto r = quantize_model(src.string(), (td.p / "awq").string(), o);
  ASSERT_TRUE(r.ok()) << r.error().message;
  int scaled = 0;
  for (const auto& gr : r->groups) scaled += gr.best_index > 0;
  EXPECT_GT(scaled, 0) << "no scale group chose a non-identity ratio";
  o.method = QuantizeOptions::Method::Rtn;
  auto r2 = quantize_model(src.string(), (td.p / "rtn").string(), o);
  ASSERT_TRUE(r2.ok()) << r2.error().message;

  auto fp = load_model(src.string());
  auto awq = load_model((td.p / "awq").string());
  auto rtn = load_model((td.p / "rtn").string());
  ASSERT_TRUE(fp.ok()) << fp.error().message;
  ASSERT_TRUE(awq.ok()) << awq.error().message;
  ASSERT_TRUE(rtn.ok()) << rtn.error().message;
  EXPECT_EQ(awq->cfg.arch, fp->cfg.arch);
  EXPECT_EQ(awq->cfg.layer_window, fp->cfg.layer_window);
  std::mt19937 g(77);
  const int n_seq = 4, T = 32;
  std::vector<int32_t> toks(n_seq * T);
  for (auto& t : toks) t = 2 + (int)(g() % 690);
  const auto lf = logits_of(*fp, toks, n_seq, T), la = logits_of(*awq, toks, n_seq, T),
             lr = logits_of(*rtn, toks, n_seq, T);
  const double ea = sq_err(la, lf), er = sq_err(lr, lf);
  EXPECT_LT(ea, 1.1 * er) << GetParam() << ": AWQ error " << ea << " vs RTN " << er;
  EXPECT_GT(er, 0.0);
  std::printf("%s: logits sq error AWQ %.4g, RTN %.4g\n", GetParam().c_str(), ea, er);

  // The same checkpoint with the W4 kernels: the forward of the dequantized weights.
  LoadOptions lo;
  lo.keep_w4 = true;
  lo.lm_head = LmHeadFormat::F16;
  auto w4 = load_model((td.p / "awq").string(), lo);
  ASSERT_TRUE(w4.ok()) << w4.error().message;
  const auto lw = logits_of(*w4, toks, n_seq, T);
  double worst = 0, scale = 1;
  for (size_t i = 0; i < lw.size(); ++i) {
    worst = std::max(worst, (double)std::fabs(lw[i] - la[i]));
    scale = std::max(scale, (double)std::fabs(la[i]));
  }
  EXPECT_LT(worst / scale, 1e-3) << "W4 kernels vs dequantized fp32";
}

INSTANTIATE_TEST_SUITE_P(Tiny, FamilyQuantize, ::testing::Values("qwen3", "gemma3", "mistral", "phi3", "gemma2"));
