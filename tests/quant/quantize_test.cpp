// The whole `awq quantize` pipeline on a synthetic tiny Llama: the checkpoint loads back and its
// weights are what the quantizer produced; AWQ beats RTN on the block output; runs are
// deterministic; bad inputs give clear errors and leave no output or temp directory behind.
#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <random>

#include "io/safetensors.h"
#include "model/forward.h"
#include "quant/quantize.h"
#include "common/tiny_llama_dir.h"

using namespace awq;
namespace fs = std::filesystem;

namespace {

struct TempDir {
  fs::path p;
  TempDir() {
    p = fs::temp_directory_path() / ("awq_qtest_" + std::to_string(::getpid()) + "_" +
                                     std::to_string(std::random_device{}()));
    fs::create_directories(p);
  }
  ~TempDir() { fs::remove_all(p); }
};

void write_text(const fs::path& p, const std::string& s) { std::ofstream(p) << s; }

// Tiny Llama (GQA 4/2 heads, hidden 64, intermediate 128, 2 layers) with the tiny_llama3
// tokenizer (vocab 704). Channel 3 of the residual stream carries large activations.
fs::path make_tiny_model(const fs::path& dir, const std::string& arch = "LlamaForCausalLM") {
  awq::test::TinyLlamaShape s;  // the defaults are this model
  s.arch = arch;
  return awq::test::write_tiny_llama_dir(dir, s);
}

fs::path make_calib(const fs::path& p, int n_para) {
  std::string s;
  std::mt19937 g(9);
  const char* words[] = {"the", "model", "weights", "are", "quantized", "to", "four", "bits",
                         "with", "activation", "aware", "scales", "and", "clipping", "of", "groups"};
  for (int i = 0; i < n_para; ++i) {
    for (int j = 0; j < 40; ++j) s += std::string(words[g() % 16]) + (j % 11 == 10 ? ".\n" : " ");
    s += "\n\n";
  }
  write_text(p, s);
  return p;
}

QuantizeOptions small_opts(const fs::path& calib) {
  QuantizeOptions o;
  o.search.q.group_size = 32;
  o.calib_path = calib.string();
  o.n_samples = 64;
  o.seqlen = 128;
  o.progress = false;
  return o;
}

bool no_leftovers(const fs::path& dir) {
  for (auto& e : fs::directory_iterator(dir))
    if (e.path().filename().string().find(".tmp") != std::string::npos) return false;
  return true;
}

std::string read_bytes(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

}  // namespace

TEST(Quantize, AwqCheckpointLoadsAndBeatsRtnOnTheModelOutput) {
  TempDir td;
  const fs::path src = make_tiny_model(td.p / "src");
  const fs::path calib = make_calib(td.p / "calib.txt", 20);
  QuantizeOptions o = small_opts(calib);
  auto r = quantize_model(src.string(), (td.p / "awq").string(), o);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_GT(r->n_blocks, 2);
  o.method = QuantizeOptions::Method::Rtn;
  auto r2 = quantize_model(src.string(), (td.p / "rtn").string(), o);
  ASSERT_TRUE(r2.ok()) << r2.error().message;
  auto fp = load_model(src.string());
  auto awq = load_model((td.p / "awq").string());
  auto rtn = load_model((td.p / "rtn").string());
  ASSERT_TRUE(fp.ok() && awq.ok() && rtn.ok());
  EXPECT_TRUE(awq->cfg.quant.present);
  EXPECT_EQ(awq->cfg.quant.group_size, 32);
  // Final hidden states on held-out token sequences: AWQ closer to FP than RTN.
  std::mt19937 g(77);
  std::vector<int32_t> toks(4 * 48);
  for (auto& t : toks) t = 2 + (int)(g() % 690);
  const size_t n = toks.size() * 64;
  std::vector<float> hf(n), ha(n), hr(n);
  forward_hidden(*fp, toks.data(), 4, 48, hf.data());
  forward_hidden(*awq, toks.data(), 4, 48, ha.data());
  forward_hidden(*rtn, toks.data(), 4, 48, hr.data());
  double ea = 0, er = 0;
  for (size_t i = 0; i < n; ++i) {
    ea += (ha[i] - hf[i]) * (ha[i] - hf[i]);
    er += (hr[i] - hf[i]) * (hr[i] - hf[i]);
  }
  EXPECT_LT(ea, er) << "AWQ error " << ea << " vs RTN " << er;
  EXPECT_GT(er, 0.0);
}

TEST(Quantize, DeterministicOutput) {
  TempDir td;
  const fs::path src = make_tiny_model(td.p / "src");
  const fs::path calib = make_calib(td.p / "calib.txt", 14);
  QuantizeOptions o = small_opts(calib);
  ASSERT_TRUE(quantize_model(src.string(), (td.p / "a").string(), o).ok());
  ASSERT_TRUE(quantize_model(src.string(), (td.p / "b").string(), o).ok());
  for (const char* f : {"model.safetensors", "config.json", "tokenizer.json"})
    EXPECT_EQ(read_bytes(td.p / "a" / f), read_bytes(td.p / "b" / f)) << f;
}

TEST(Quantize, BadInputsFailCleanly) {
  TempDir td;
  const fs::path src = make_tiny_model(td.p / "src");
  const fs::path calib = make_calib(td.p / "calib.txt", 14);
  {  // unknown architecture
    const fs::path bad = make_tiny_model(td.p / "gpt2", "GPT2LMHeadModel");
    auto r = quantize_model(bad.string(), (td.p / "o1").string(), small_opts(calib));
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.error().message.find("unsupported architecture \"GPT2LMHeadModel\""), std::string::npos)
        << r.error().message;
    EXPECT_NE(r.error().message.find("LlamaForCausalLM"), std::string::npos);
  }
  {  // calibration text too short for one block
    const fs::path shortc = td.p / "short.txt";
    write_text(shortc, "just a few words\n");
    QuantizeOptions o = small_opts(shortc);
    auto r = quantize_model(src.string(), (td.p / "o2").string(), o);
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.error().message.find("calibration text too short"), std::string::npos)
        << r.error().message;
  }
  {  // group size not dividing the input size
    QuantizeOptions o = small_opts(calib);
    o.search.q.group_size = 48;
    auto r = quantize_model(src.string(), (td.p / "o3").string(), o);
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.error().message.find("does not divide the input size 64"), std::string::npos)
        << r.error().message;
  }
  {  // output directory not writable (its parent is a regular file)
    write_text(td.p / "afile", "x");
    auto r = quantize_model(src.string(), (td.p / "afile" / "out").string(), small_opts(calib));
    ASSERT_FALSE(r.ok());
  }
  {  // interrupted (SIGINT sets the flag): error, no output, no temp dir
    std::atomic<bool> cancel{true};
    QuantizeOptions o = small_opts(calib);
    o.cancel = &cancel;
    auto r = quantize_model(src.string(), (td.p / "o5").string(), o);
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.error().message.find("interrupted"), std::string::npos);
  }
  for (const char* o : {"o1", "o2", "o3", "o5"}) EXPECT_FALSE(fs::exists(td.p / o)) << o;
  EXPECT_TRUE(no_leftovers(td.p));
}
