// GGUF export (`awq quantize --format gguf`): the block quantizers against llama.cpp's plain
// reference rounding under the importance they minimise, the GGUF writer against our strict
// reader, and the whole pipeline on the tiny Llama: an F32 export converted back by
// `awq convert` (whose names, q/k order and tokenizer follow Transformers' GGUF loader) gives
// the source weights bit for bit and the same tokenization; Q4_0 AWQ beats Q4_0 RTN on the
// model output; refusals name the reason and leave nothing behind.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>

#include "common/tiny_llama_dir.h"
#include "core/half.h"
#include "io/gguf.h"
#include "io/gguf_dequant.h"
#include "io/gguf_writer.h"
#include "io/safetensors.h"
#include "io/tokenizer.h"
#include "model/forward.h"
#include "model/gguf_convert.h"
#include "quant/ggml_quant.h"
#include "quant/gguf_export.h"
#include "quant/quantize.h"

using namespace awq;
namespace fs = std::filesystem;

namespace {

struct TempDir {
  fs::path p;
  TempDir() {
    p = fs::temp_directory_path() / ("awq_ggufx_" + std::to_string(::getpid()) + "_" +
                                     std::to_string(std::random_device{}()));
    fs::create_directories(p);
  }
  ~TempDir() { fs::remove_all(p); }
};

bool no_leftovers(const fs::path& dir) {
  for (auto& e : fs::directory_iterator(dir))
    if (e.path().filename().string().find(".tmp") != std::string::npos) return false;
  return true;
}

// Rows like real weights: Gaussian with a few large outliers.
std::vector<float> weights(int n, unsigned seed) {
  std::mt19937 g(seed);
  std::normal_distribution<float> d(0.0f, 0.02f);
  std::vector<float> x(n);
  for (auto& v : x) v = d(g);
  for (int i = 0; i < n; i += 97) x[i] *= 8.0f;
  return x;
}

double weighted_error(GGMLType t, const std::vector<uint8_t>& q, const std::vector<float>& x,
                      const float* imp, int64_t b0, int64_t n) {
  std::vector<float> y(x.size());
  EXPECT_TRUE(dequantize_ggml((uint32_t)t, q.data(), q.size(), y.data(), y.size(), "t").ok());
  double e = 0;
  for (int64_t i = b0; i < b0 + n; ++i) {
    const double r = (double)x[i] - y[i];
    e += (imp ? imp[i] : 1.0) * r * r;
  }
  return e;
}

}  // namespace

TEST(GgmlQuant, NeverWorseThanReferenceAndBetterOverall) {
  const int n = 32 * 64;
  const std::vector<float> x = weights(n, 3);
  std::mt19937 g(4);
  std::exponential_distribution<float> ex(1.0f);
  std::vector<float> imp(n);
  for (auto& v : imp) v = ex(g) * ex(g);  // heavy-tailed, like activation second moments
  for (GGMLType t : {GGMLType::Q4_0, GGMLType::Q4_1, GGMLType::Q5_0, GGMLType::Q5_1, GGMLType::Q8_0}) {
    for (const float* w : {(const float*)nullptr, (const float*)imp.data()}) {
      const size_t rb = ggml_row_bytes(t, n), bb = rb / (n / 32);
      std::vector<uint8_t> ours(rb), ref(rb);
      ASSERT_TRUE(quantize_row_ggml(t, x.data(), n, w, ours.data()).ok());
      for (int b = 0; b < n / 32; ++b) quantize_block_reference(t, x.data() + 32 * b, ref.data() + bb * b);
      double eo = 0, er = 0;
      for (int b = 0; b < n / 32; ++b) {
        const double o = weighted_error(t, ours, x, w, 32 * b, 32);
        const double r = weighted_error(t, ref, x, w, 32 * b, 32);
        EXPECT_LE(o, r * (1 + 1e-9)) << ggml_type_name((uint32_t)t) << " block " << b;
        eo += o, er += r;
      }
      EXPECT_LT(eo, 0.97 * er) << ggml_type_name((uint32_t)t) << (w ? " weighted" : " plain");
    }
  }
}

TEST(GgmlQuant, ImportanceMovesTheErrorOffImportantChannels) {
  const int n = 32 * 128;
  const std::vector<float> x = weights(n, 11);
  std::vector<float> imp(n, 1.0f);
  for (int i = 0; i < n; i += 32) imp[i + 5] = 1000.0f;  // channel 5 of every block matters
  for (GGMLType t : {GGMLType::Q4_0, GGMLType::Q4_1, GGMLType::Q5_0, GGMLType::Q5_1,
                     GGMLType::Q4_K, GGMLType::Q5_K, GGMLType::Q6_K}) {
    const size_t rb = ggml_row_bytes(t, n);
    std::vector<uint8_t> plain(rb), weighted(rb);
    ASSERT_TRUE(quantize_row_ggml(t, x.data(), n, nullptr, plain.data()).ok());
    ASSERT_TRUE(quantize_row_ggml(t, x.data(), n, imp.data(), weighted.data()).ok());
    EXPECT_LT(weighted_error(t, weighted, x, imp.data(), 0, n),
              0.8 * weighted_error(t, plain, x, imp.data(), 0, n))
        << ggml_type_name((uint32_t)t);
  }
}

// The K-quants against a plain rounding written here from the format alone (each sub-block's
// min(x, 0)..max range over the codes, the sub-block scales and mins on the 6-bit grid of their
// maxima / 63 -- Q6_K: symmetric, signed extreme at -32, scales on the int8 grid of the largest
// at -128 -- then nearest codes): our search must be clearly better, and each type's error must
// shrink with its bits.
std::vector<float> plain_kquant(GGMLType t, const std::vector<float>& x) {
  std::vector<float> y(x.size());
  const bool q6 = t == GGMLType::Q6_K;
  const int sub = q6 ? 16 : 32, ns = 256 / sub, nmax = t == GGMLType::Q4_K ? 15 : 31;
  auto f16 = [](float v) { return fp16_to_f32(f32_to_fp16(v)); };
  for (size_t b0 = 0; b0 < x.size(); b0 += 256) {
    std::vector<float> sc(ns), mn(ns);
    for (int j = 0; j < ns; ++j) {
      const float* v = x.data() + b0 + sub * j;
      float lo = 0, hi = v[0], big = 0;
      for (int i = 0; i < sub; ++i) {
        lo = std::min(lo, v[i]), hi = std::max(hi, v[i]);
        if (std::fabs(v[i]) > std::fabs(big)) big = v[i];
      }
      sc[j] = q6 ? big / -32.0f : (hi - lo) / nmax;
      mn[j] = -lo;
    }
    float smax = 0, mmax = 0;
    for (int j = 0; j < ns; ++j) {
      if (std::fabs(sc[j]) > std::fabs(smax)) smax = sc[j];
      mmax = std::max(mmax, mn[j]);
    }
    const float d = f16(q6 ? smax / -128.0f : smax / 63.0f), dm = f16(mmax / 63.0f);
    for (int j = 0; j < ns; ++j) {
      const float D = d != 0 ? d * std::clamp(std::nearbyint(sc[j] / d), q6 ? -128.0f : 0.0f, q6 ? 127.0f : 63.0f) : 0;
      const float M = q6 || dm == 0 ? 0 : dm * std::clamp(std::nearbyint(mn[j] / dm), 0.0f, 63.0f);
      for (int i = 0; i < sub; ++i) {
        const size_t k = b0 + sub * j + i;
        const float q = D != 0 ? std::clamp(std::nearbyint((x[k] + M) / D), q6 ? -32.0f : 0.0f, q6 ? 31.0f : (float)nmax) : 0;
        y[k] = D * q - M;
      }
    }
  }
  return y;
}

TEST(GgmlQuant, KQuantsBeatPlainRoundingAndGainWithBits) {
  const int n = 256 * 32;
  const std::vector<float> x = weights(n, 5);
  double prev = INFINITY;
  for (GGMLType t : {GGMLType::Q4_K, GGMLType::Q5_K, GGMLType::Q6_K}) {
    std::vector<uint8_t> q(ggml_row_bytes(t, n));
    ASSERT_EQ(q.size(), (size_t)n / 256 * (t == GGMLType::Q4_K ? 144 : t == GGMLType::Q5_K ? 176 : 210));
    ASSERT_TRUE(quantize_row_ggml(t, x.data(), n, nullptr, q.data()).ok());
    const double ours = weighted_error(t, q, x, nullptr, 0, n);
    const std::vector<float> p = plain_kquant(t, x);
    double plain = 0, ss = 0;
    for (int i = 0; i < n; ++i) plain += (x[i] - p[i]) * (x[i] - p[i]), ss += x[i] * x[i];
    EXPECT_LT(ours, 0.95 * plain) << ggml_type_name((uint32_t)t);  // measured 0.83 / 0.85 / 0.91
    EXPECT_LT(ours, prev) << ggml_type_name((uint32_t)t) << " is no better than the type below";
    prev = ours;
    std::printf("%s: relative squared error %.3e (plain rounding %.3e)\n",
                ggml_type_name((uint32_t)t).c_str(), ours / ss, plain / ss);
  }
  std::vector<uint8_t> q(ggml_row_bytes(GGMLType::Q4_K, 256));
  EXPECT_FALSE(quantize_row_ggml(GGMLType::Q4_K, x.data(), 288, nullptr, q.data()).ok());
}

TEST(GgufTypes, TheChoicesOfLlamaQuantize) {
  // llama.cpp's llama_tensor_get_type (llama-cpp-python 0.3.36) for a 30-layer model with
  // SmolLM2's widths (576 hidden, 1536 intermediate): use_more_bits(i) = i < 3 || i >= 26 ||
  // (i - 3) % 3 == 2; rows of 576 do not fit 256-weight blocks.
  const GgufTarget km = *parse_gguf_type("q4_k_m");
  EXPECT_EQ(km, *parse_gguf_type("Q4_K"));
  EXPECT_EQ(km.name(), "Q4_K_M");
  EXPECT_EQ(km.file_type(), 15u);
  std::string note;
  auto ty = [&](const GgufTarget& t, const std::string& n, int64_t cols, bool imat = true) {
    note.clear();
    return gguf_tensor_type(t, n, 30, cols, true, imat, &note);
  };
  EXPECT_EQ(ty(km, "blk.0.attn_q.weight", 576), GGMLType::Q5_0);
  EXPECT_NE(note.find("Q4_K's blocks of 256, Q5_0"), std::string::npos) << note;
  EXPECT_EQ(ty(km, "blk.0.attn_v.weight", 576), GGMLType::Q8_0);  // Q6_K, then its fallback
  EXPECT_EQ(ty(km, "blk.3.attn_v.weight", 576), GGMLType::Q5_0);
  EXPECT_EQ(ty(km, "blk.5.attn_v.weight", 512), GGMLType::Q6_K);
  EXPECT_EQ(ty(km, "blk.5.ffn_down.weight", 1536), GGMLType::Q6_K);
  EXPECT_TRUE(note.empty()) << note;
  EXPECT_EQ(ty(km, "blk.4.ffn_down.weight", 1536), GGMLType::Q4_K);
  EXPECT_EQ(ty(km, "blk.29.ffn_down.weight", 1536), GGMLType::Q6_K);
  EXPECT_EQ(ty(km, "token_embd.weight", 576), GGMLType::Q8_0);  // tied: the output tensor
  EXPECT_EQ(ty(km, "output.weight", 512), GGMLType::Q6_K);
  EXPECT_EQ(ty(km, "blk.1.attn_k.weight", 48), GGMLType::F16);
  const GgufTarget q40 = *parse_gguf_type("q4_0");
  EXPECT_EQ(ty(q40, "blk.2.ffn_down.weight", 1536), GGMLType::Q4_1);  // with an imatrix only
  EXPECT_EQ(ty(q40, "blk.2.ffn_down.weight", 1536, false), GGMLType::Q4_0);
  EXPECT_EQ(ty(q40, "blk.3.ffn_down.weight", 1536), GGMLType::Q4_0);
  EXPECT_EQ(ty(q40, "output.weight", 576), GGMLType::Q8_0);
  EXPECT_EQ(ty(q40, "output.weight", 512), GGMLType::Q6_K);
  const GgufTarget q80 = *parse_gguf_type("q8_0");
  EXPECT_EQ(ty(q80, "output.weight", 512), GGMLType::Q8_0);
  const GgufTarget ks = *parse_gguf_type("q4_k_s");
  EXPECT_EQ(ty(ks, "blk.3.attn_v.weight", 512), GGMLType::Q5_K);
  EXPECT_EQ(ty(ks, "blk.4.attn_v.weight", 512), GGMLType::Q4_K);
  EXPECT_EQ(ty(ks, "blk.2.ffn_down.weight", 1536), GGMLType::Q5_K);
  EXPECT_EQ(ty(*parse_gguf_type("q5_k_s"), "blk.0.attn_q.weight", 576), GGMLType::Q5_1);
  EXPECT_FALSE(parse_gguf_type("q3_k").ok());
}

TEST(GgmlQuant, ReferenceIsLlamaCppsRounding) {
  // Q4_0: the signed extreme maps to code 0 (-8 * d); Q8_0: to +-127; Q4_1: min and max exact.
  std::vector<float> x(32);
  for (int i = 0; i < 32; ++i) x[i] = 0.01f * (i - 10);
  x[7] = -0.5f;
  std::vector<uint8_t> q(34);
  std::vector<float> y(32);
  quantize_block_reference(GGMLType::Q4_0, x.data(), q.data());
  ASSERT_TRUE(dequantize_ggml((uint32_t)GGMLType::Q4_0, q.data(), 18, y.data(), 32, "t").ok());
  EXPECT_NEAR(y[7], -0.5f, 1e-3);
  EXPECT_EQ(q[2 + 7] & 0xF, 0);  // weight 7 is the low nibble of byte 7: code 0
  quantize_block_reference(GGMLType::Q4_1, x.data(), q.data());
  ASSERT_TRUE(dequantize_ggml((uint32_t)GGMLType::Q4_1, q.data(), 20, y.data(), 32, "t").ok());
  EXPECT_NEAR(y[7], -0.5f, 1e-3);
  EXPECT_NEAR(y[31], 0.21f, 1e-3);
  quantize_block_reference(GGMLType::Q8_0, x.data(), q.data());
  EXPECT_EQ((int8_t)q[2 + 7], -127);
}

TEST(GgmlQuant, BadRowsRefused) {
  std::vector<float> x(48, 0.1f);
  std::vector<uint8_t> out(100);
  auto s = quantize_row_ggml(GGMLType::Q4_0, x.data(), 48, nullptr, out.data());
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("multiple of"), std::string::npos) << s.message();
  x[3] = NAN;
  s = quantize_row_ggml(GGMLType::Q8_0, x.data(), 32, nullptr, out.data());
  EXPECT_NE(s.message().find("non-finite weight at column 3"), std::string::npos) << s.message();
  EXPECT_FALSE(quantize_row_ggml(GGMLType::Q4_K, x.data(), 32, nullptr, out.data()).ok());
  EXPECT_FALSE(quantize_row_ggml(GGMLType::Q3_K, x.data(), 32, nullptr, out.data()).ok());
  EXPECT_FALSE(parse_gguf_type("iq4_nl").ok());
  EXPECT_EQ(parse_gguf_type("Q4_1")->base, GGMLType::Q4_1);
}

TEST(GGUFWriter, RoundTripThroughTheReader) {
  TempDir td;
  const std::string out = (td.p / "w.gguf").string();
  auto w = GGUFWriter::create(out, false);
  ASSERT_TRUE(w.ok()) << w.error().message;
  w->set_string("general.architecture", "llama");
  w->set_u32("a.u32", 7);
  w->set_i32("a.i32", -3);
  w->set_u64("a.u64", 1ull << 40);
  w->set_f32("a.f32", 0.25f);
  w->set_bool("a.bool", true);
  w->set_string_array("a.strs", {"x", "", "h\xc3\xa9"});
  w->set_i32_array("a.ints", {1, -2, 3});
  w->set_f32_array("a.floats", {1.5f});
  std::vector<float> v(5);
  for (int i = 0; i < 5; ++i) v[i] = 0.5f * i;
  ASSERT_TRUE(w->add_tensor("norm", GGMLType::F32, {5}, v.data(), 20).ok());
  std::vector<float> m = weights(64 * 3, 1);
  std::vector<uint8_t> q(ggml_row_bytes(GGMLType::Q4_0, 64) * 3);
  for (int r = 0; r < 3; ++r)
    ASSERT_TRUE(quantize_row_ggml(GGMLType::Q4_0, m.data() + 64 * r, 64, nullptr,
                                  q.data() + r * 36).ok());
  ASSERT_TRUE(w->add_tensor("mat", GGMLType::Q4_0, {64, 3}, q.data(), q.size()).ok());
  EXPECT_FALSE(w->add_tensor("bad", GGMLType::Q4_0, {64, 3}, q.data(), q.size() - 1).ok());
  EXPECT_FALSE(w->add_tensor("bad", GGMLType::Q4_0, {48, 3}, q.data(), q.size()).ok());
  EXPECT_FALSE(fs::exists(out)) << "nothing at the output name before finish()";
  ASSERT_TRUE(w->finish().ok());
  EXPECT_TRUE(no_leftovers(td.p));
  auto g = GGUFFile::open(out);
  ASSERT_TRUE(g.ok()) << g.error().message;
  EXPECT_EQ(g->version(), 3u);
  EXPECT_EQ(*g->get_u32("a.u32"), 7u);
  EXPECT_EQ(*g->get_i64("a.i32"), -3);
  EXPECT_EQ(*g->get_u64("a.u64"), 1ull << 40);
  EXPECT_EQ(*g->get_f32("a.f32"), 0.25f);
  EXPECT_TRUE(*g->get_bool("a.bool"));
  EXPECT_EQ(*g->get_string_array("a.strs"), (std::vector<std::string>{"x", "", "h\xc3\xa9"}));
  EXPECT_EQ(*g->get_int_array("a.ints"), (std::vector<int64_t>{1, -2, 3}));
  EXPECT_EQ(*g->get_f32_array("a.floats"), (std::vector<float>{1.5f}));
  ASSERT_EQ(g->tensors().size(), 2u);
  EXPECT_EQ(*g->dequantize(*g->find_tensor("norm")), v);
  const GGUFTensor* mt = g->find_tensor("mat");
  EXPECT_EQ(mt->shape(), (std::vector<int64_t>{3, 64}));
  EXPECT_EQ(mt->offset % 32, 0u);
  EXPECT_EQ(std::string((const char*)mt->data, mt->nbytes), std::string((const char*)q.data(), q.size()));

  // an existing output is kept without overwrite; a duplicate key fails finish and leaves nothing
  EXPECT_FALSE(GGUFWriter::create(out, false).ok());
  auto w2 = GGUFWriter::create(out, true);
  ASSERT_TRUE(w2.ok());
  w2->set_u32("k", 1);
  w2->set_u32("k", 2);
  EXPECT_FALSE(w2->finish().ok());
  w2->abort();
  EXPECT_TRUE(no_leftovers(td.p));
  EXPECT_TRUE(GGUFFile::open(out).ok()) << "the old file is untouched";
}

namespace {

fs::path make_calib(const fs::path& p) {
  std::string s;
  std::mt19937 g(9);
  const char* words[] = {"the", "model", "weights", "are", "quantized", "to", "four", "bits",
                         "with", "activation", "aware", "scales", "and", "clipping", "of", "groups"};
  for (int i = 0; i < 20; ++i) {
    for (int j = 0; j < 40; ++j) s += std::string(words[g() % 16]) + (j % 11 == 10 ? ".\n" : " ");
    s += "\n\n";
  }
  std::ofstream(p) << s;
  return p;
}

QuantizeOptions gguf_opts(const fs::path& calib, GgufTarget t, QuantizeOptions::Method m) {
  QuantizeOptions o;
  o.format = CheckpointFormat::Gguf;
  o.gguf_type = t;
  o.method = m;
  int wb, gs;
  bool zp;
  if (gguf_search_config(t, &wb, &gs, &zp)) o.search.q = {wb, gs, zp};
  else o.search.q.group_size = 32;
  o.calib_path = calib.string();
  o.n_samples = 64;
  o.seqlen = 128;
  o.progress = false;
  return o;
}

std::vector<float> hidden(const fs::path& dir) {
  auto m = load_model(dir.string());
  EXPECT_TRUE(m.ok()) << (m.ok() ? "" : m.error().message);
  if (!m.ok()) return {};
  std::mt19937 g(77);
  std::vector<int32_t> toks(4 * 48);
  for (auto& t : toks) t = 2 + (int)(g() % 690);
  std::vector<float> h(toks.size() * m->cfg.hidden);
  forward_hidden(*m, toks.data(), 4, 48, h.data());
  return h;
}

}  // namespace

TEST(GgufExport, F32ExportConvertsBackBitExact) {
  TempDir td;
  const fs::path src = awq::test::write_tiny_llama_dir(td.p / "src", {});
  const fs::path calib = make_calib(td.p / "calib.txt");
  const fs::path out = td.p / "tiny.gguf";
  auto r = quantize_model(src.string(), out.string(),
                          gguf_opts(calib, GGMLType::F32, QuantizeOptions::Method::Rtn));
  ASSERT_TRUE(r.ok()) << r.error().message;
  auto g = GGUFFile::open(out.string());
  ASSERT_TRUE(g.ok()) << g.error().message;
  EXPECT_EQ(*g->get_string("general.architecture"), "llama");
  EXPECT_EQ(*g->get_string("tokenizer.ggml.pre"), "llama-bpe");
  EXPECT_EQ(*g->get_u32("llama.attention.head_count_kv"), 2u);
  EXPECT_EQ(*g->get_u32("llama.rope.dimension_count"), 16u);
  ASSERT_NE(g->find_tensor("blk.1.ffn_down.weight"), nullptr);
  EXPECT_EQ(g->find_tensor("output.weight"), nullptr) << "tied embeddings: no output tensor";

  ASSERT_TRUE(convert_gguf_to_hf(out.string(), (td.p / "back").string(), {DType::F32, false}).ok());
  auto a = SafeTensors::open(src.string());
  auto b = SafeTensors::open((td.p / "back").string());
  ASSERT_TRUE(a.ok() && b.ok());
  size_t n = 0;
  for (const auto& name : a->names()) {
    auto x = a->to_f32(name);
    auto y = b->to_f32(name);
    ASSERT_TRUE(x.ok() && y.ok()) << name;
    EXPECT_EQ(*x, *y) << name << " (q/k rows permuted and back, names mapped)";
    ++n;
  }
  EXPECT_EQ(n, b->names().size());
  auto ta = Tokenizer::load(src.string());
  auto tb = Tokenizer::load((td.p / "back").string());
  ASSERT_TRUE(ta.ok() && tb.ok());
  for (const char* s : {"Hello world 12345 it's", "  spaces\n\nand\ttabs 3.14159", "caf\xc3\xa9 ok"})
    EXPECT_EQ(ta->encode(s), tb->encode(s)) << s;
  EXPECT_TRUE(no_leftovers(td.p));
}

TEST(GgufExport, Q4_0AwqBeatsRtnAndTypesFollowLlamaCpp) {
  TempDir td;
  const fs::path src = awq::test::write_tiny_llama_dir(td.p / "src", {});
  const fs::path calib = make_calib(td.p / "calib.txt");
  for (auto m : {QuantizeOptions::Method::Awq, QuantizeOptions::Method::Rtn}) {
    const std::string name = m == QuantizeOptions::Method::Awq ? "awq" : "rtn";
    auto r = quantize_model(src.string(), (td.p / (name + ".gguf")).string(),
                            gguf_opts(calib, {GGMLType::Q4_0}, m));
    ASSERT_TRUE(r.ok()) << r.error().message;
    ASSERT_TRUE(convert_gguf_to_hf((td.p / (name + ".gguf")).string(), (td.p / name).string(),
                                   {DType::F32, false}).ok());
  }
  auto g = GGUFFile::open((td.p / "awq.gguf").string());
  ASSERT_TRUE(g.ok());
  EXPECT_EQ(g->find_tensor("blk.0.attn_q.weight")->type, (uint32_t)GGMLType::Q4_0);
  EXPECT_EQ(g->find_tensor("blk.1.ffn_down.weight")->type, (uint32_t)GGMLType::Q4_0);
  EXPECT_EQ(g->find_tensor("token_embd.weight")->type, (uint32_t)GGMLType::Q8_0)
      << "tied embeddings are llama.cpp's output tensor: Q8_0 when the row is not 256-aligned";
  EXPECT_EQ(g->find_tensor("blk.0.attn_norm.weight")->type, (uint32_t)GGMLType::F32);
  EXPECT_EQ(*g->get_u32("general.file_type"), 2u);

  const auto hf = hidden(src), ha = hidden(td.p / "awq"), hr = hidden(td.p / "rtn");
  ASSERT_FALSE(hf.empty() || ha.empty() || hr.empty());
  double ea = 0, er = 0;
  for (size_t i = 0; i < hf.size(); ++i)
    ea += (ha[i] - hf[i]) * (ha[i] - hf[i]), er += (hr[i] - hf[i]) * (hr[i] - hf[i]);
  EXPECT_GT(er, 0.0);
  EXPECT_LT(ea, er) << "AWQ Q4_0 error " << ea << " vs RTN Q4_0 " << er;
}

TEST(GgufExport, Q4_K_MAwqBeatsRtnWithLlamaCppsMixture) {
  // 256 wide, 512 intermediate: every matrix fits the K-quants' 256-weight blocks
  TempDir td;
  awq::test::TinyLlamaShape st;
  st.hidden = 256, st.intermediate = 512, st.n_heads = 4, st.n_kv_heads = 2, st.head_dim = 64;
  const fs::path src = awq::test::write_tiny_llama_dir(td.p / "src", st);
  const fs::path calib = make_calib(td.p / "calib.txt");
  for (auto m : {QuantizeOptions::Method::Awq, QuantizeOptions::Method::Rtn}) {
    const std::string name = m == QuantizeOptions::Method::Awq ? "awq" : "rtn";
    auto r = quantize_model(src.string(), (td.p / (name + ".gguf")).string(),
                            gguf_opts(calib, *parse_gguf_type("q4_k_m"), m));
    ASSERT_TRUE(r.ok()) << r.error().message;
    ASSERT_TRUE(convert_gguf_to_hf((td.p / (name + ".gguf")).string(), (td.p / name).string(),
                                   {DType::F32, false}).ok());
  }
  auto g = GGUFFile::open((td.p / "awq.gguf").string());
  ASSERT_TRUE(g.ok());
  // 2 layers: use_more_bits(0) and (1) hold (i >= 7 * 2 / 8 = 1 for layer 1, i < 2 / 8 = 0 no)
  EXPECT_EQ(g->find_tensor("blk.0.attn_q.weight")->type, (uint32_t)GGMLType::Q4_K);
  EXPECT_EQ(g->find_tensor("blk.0.attn_v.weight")->type, (uint32_t)GGMLType::Q4_K);
  EXPECT_EQ(g->find_tensor("blk.1.attn_v.weight")->type, (uint32_t)GGMLType::Q6_K);
  EXPECT_EQ(g->find_tensor("blk.1.ffn_down.weight")->type, (uint32_t)GGMLType::Q6_K);
  EXPECT_EQ(g->find_tensor("token_embd.weight")->type, (uint32_t)GGMLType::Q6_K);
  EXPECT_EQ(*g->get_u32("general.file_type"), 15u);
  const auto hf = hidden(src), ha = hidden(td.p / "awq"), hr = hidden(td.p / "rtn");
  ASSERT_FALSE(hf.empty() || ha.empty() || hr.empty());
  double ea = 0, er = 0;
  for (size_t i = 0; i < hf.size(); ++i)
    ea += (ha[i] - hf[i]) * (ha[i] - hf[i]), er += (hr[i] - hf[i]) * (hr[i] - hf[i]);
  EXPECT_GT(er, 0.0);
  EXPECT_LT(ea, er) << "AWQ Q4_K_M error " << ea << " vs RTN Q4_K_M " << er;
}

TEST(GgufExport, RefusalsNameTheReasonAndLeaveNothing) {
  TempDir td;
  const fs::path calib = make_calib(td.p / "calib.txt");
  const fs::path gemma = td.p / "gemma3";
  fs::copy(fs::path(AWQ_SOURCE_DIR) / "tests/fixtures/model/tiny_gemma3", gemma);
  fs::copy_file(fs::path(AWQ_SOURCE_DIR) / "tests/fixtures/tokenizer/tiny_llama3/tokenizer.json",
                gemma / "tokenizer.json");
  auto r = quantize_model(gemma.string(), (td.p / "g.gguf").string(),
                          gguf_opts(calib, GGMLType::Q4_0, QuantizeOptions::Method::Rtn));
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("cannot be written as GGUF"), std::string::npos)
      << r.error().message;
  const fs::path src = awq::test::write_tiny_llama_dir(td.p / "src", {});
  QuantizeOptions o = gguf_opts(calib, GGMLType::Q4_0, QuantizeOptions::Method::Rtn);
  o.resume = true;
  r = quantize_model(src.string(), (td.p / "x.gguf").string(), o);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("--resume is not supported with --format gguf"),
            std::string::npos) << r.error().message;
  // a tokenizer we cannot map: fails at the end, the output never appears
  nlohmann::json tj = nlohmann::json::parse(std::ifstream(src / "tokenizer.json"));
  tj["pre_tokenizer"] = {{"type", "Whitespace"}};
  std::ofstream(src / "tokenizer.json") << tj.dump();
  r = quantize_model(src.string(), (td.p / "x.gguf").string(),
                     gguf_opts(calib, GGMLType::Q4_0, QuantizeOptions::Method::Rtn));
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("pre_tokenizer"), std::string::npos) << r.error().message;
  EXPECT_FALSE(fs::exists(td.p / "x.gguf"));
  EXPECT_TRUE(no_leftovers(td.p));
}
