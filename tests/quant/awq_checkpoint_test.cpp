// AwqCheckpointWriter / load_awq_linear: a synthetic tiny model written, read back, checked by
// the independent Python checker (scripts/check_awq_format.py); temp dirs never left behind.
#include "quant/awq_checkpoint.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "core/half.h"
#include "core/mmap_file.h"
#include "io/compressed_tensors.h"
#include "model/weights.h"
#include "kernels/w4.h"
#include "quant/awq_pack.h"

namespace awq {
namespace {

namespace fs = std::filesystem;

class TempDir {
 public:
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "awq_ckpt_test_XXXXXX").string();
    path_ = ::mkdtemp(tmpl.data());
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  fs::path path() const { return path_; }

 private:
  fs::path path_;
};

std::vector<std::string> entries(const fs::path& dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) out.push_back(e.path().filename().string());
  std::sort(out.begin(), out.end());
  return out;
}

void write_text(const fs::path& p, const std::string& s) { std::ofstream(p) << s; }

std::vector<float> random_matrix(std::mt19937& rng, size_t n, float sd) {
  std::normal_distribution<float> nd(0.0f, sd);
  std::vector<float> v(n);
  for (auto& x : v) x = nd(rng);
  return v;
}

const char* kSrcConfig = R"({
  "architectures": ["LlamaForCausalLM"],
  "model_type": "llama",
  "hidden_size": 64,
  "intermediate_size": 128,
  "num_hidden_layers": 1,
  "num_attention_heads": 4,
  "num_key_value_heads": 2,
  "head_dim": 16,
  "vocab_size": 100,
  "max_position_embeddings": 128,
  "rms_norm_eps": 1e-05,
  "rope_theta": 10000.0,
  "attention_bias": true,
  "hidden_act": "silu",
  "tie_word_embeddings": false,
  "torch_dtype": "bfloat16"
})";

// A complete one-layer Llama (GQA, attention bias): hidden 64, 4 heads of 16, 2 kv heads,
// intermediate 128, vocab 100. q/k/v/o carry biases; embeddings, norms and lm_head stay fp16.
struct TinyModel {
  struct Linear {
    std::string prefix;
    int N, K;
    std::vector<float> w, bias;
  };
  std::vector<Linear> linears;  // q, k, v, o, gate, up, down
  std::vector<float> embed, norm, in_norm, post_norm, lm_head;
  explicit TinyModel(uint32_t seed) {
    std::mt19937 rng(seed);
    const std::string a = "model.layers.0.self_attn.", m = "model.layers.0.mlp.";
    struct Spec { std::string prefix; int N, K; bool bias; };
    for (const Spec& sp : {Spec{a + "q_proj", 64, 64, true}, Spec{a + "k_proj", 32, 64, true},
                           Spec{a + "v_proj", 32, 64, true}, Spec{a + "o_proj", 64, 64, true},
                           Spec{m + "gate_proj", 128, 64, false}, Spec{m + "up_proj", 128, 64, false},
                           Spec{m + "down_proj", 64, 128, false}}) {
      Linear l{sp.prefix, sp.N, sp.K, random_matrix(rng, size_t(sp.N) * sp.K, 0.08f), {}};
      if (sp.bias) l.bias = random_matrix(rng, size_t(sp.N), 0.1f);
      linears.push_back(std::move(l));
    }
    embed = random_matrix(rng, 100 * 64, 1.0f);
    norm = random_matrix(rng, 64, 0.2f);
    for (auto& v : norm) v += 1.0f;
    in_norm = norm;
    post_norm = random_matrix(rng, 64, 0.2f);
    for (auto& v : post_norm) v += 1.0f;
    lm_head = random_matrix(rng, 100 * 64, 0.05f);
  }
};

// Writes `model` with `cfg`; also writes the fp32 dequantized weights (what we evaluated) and the
// fp32 originals of the unquantized tensors to `ref_dir`/model.safetensors for the Python checker.
Status write_tiny(const TinyModel& model, const QuantConfig& cfg, const fs::path& out,
                  const fs::path& src_dir, const fs::path& ref_dir, size_t shard_bytes,
                  bool overwrite = false, CheckpointFormat fmt = CheckpointFormat::AutoAwq) {
  AWQ_ASSIGN(auto w, AwqCheckpointWriter::create(out.string(), cfg, overwrite, shard_bytes, fmt));
  std::unique_ptr<SafeTensorsWriter> ref;
  if (!ref_dir.empty()) ref = std::make_unique<SafeTensorsWriter>(ref_dir.string());
  auto plain = [&](const std::string& name, std::vector<int64_t> shape, const std::vector<float>& v) -> Status {
    AWQ_TRY(w.add_fp16(name, shape, v.data()));
    if (ref) AWQ_TRY(ref->add_f32(name, DType::F32, shape, v.data()));
    return Status::Ok();
  };
  AWQ_TRY(plain("model.embed_tokens.weight", {100, 64}, model.embed));
  AWQ_TRY(plain("model.layers.0.input_layernorm.weight", {64}, model.in_norm));
  AWQ_TRY(plain("model.layers.0.post_attention_layernorm.weight", {64}, model.post_norm));
  for (const auto& l : model.linears) {
    AWQ_ASSIGN(auto ql, quantize_linear(l.w.data(), l.N, l.K, cfg));
    AWQ_TRY(w.add_quantized(l.prefix, ql, l.bias.empty() ? nullptr : l.bias.data()));
    if (ref) {
      std::vector<float> deq(size_t(l.N) * l.K);
      dequantize_linear(ql, deq.data());
      AWQ_TRY(ref->add_f32(l.prefix + ".weight", DType::F32, {l.N, l.K}, deq.data()));
      if (!l.bias.empty()) AWQ_TRY(ref->add_f32(l.prefix + ".bias", DType::F32, {l.N}, l.bias.data()));
    }
  }
  AWQ_TRY(plain("model.norm.weight", {64}, model.norm));
  AWQ_TRY(plain("lm_head.weight", {100, 64}, model.lm_head));
  if (ref) AWQ_TRY(ref->finish());
  return w.finish(src_dir.string(), kSrcConfig, {"lm_head"});
}

fs::path make_src_dir(const fs::path& root) {
  const fs::path src = root / "src_model";
  fs::create_directories(src);
  write_text(src / "config.json", kSrcConfig);
  write_text(src / "tokenizer.json", R"({"model": {"type": "BPE"}})");
  write_text(src / "tokenizer_config.json", R"({"bos_token": "<s>"})");
  write_text(src / "generation_config.json", R"({"do_sample": false})");
  write_text(src / "model.safetensors", "not copied");
  write_text(src / "README.md", "not copied");
  return src;
}

bool no_temp_left(const fs::path& dir) {
  for (const auto& e : fs::directory_iterator(dir)) {
    const std::string n = e.path().filename().string();
    if (n.find(".tmp-") != std::string::npos || n.find(".old-") != std::string::npos) return false;
  }
  return true;
}

TEST(AwqCheckpoint, WritesReadableShardedCheckpoint) {
  TempDir td;
  const fs::path src = make_src_dir(td.path()), out = td.path() / "tiny-awq";
  const TinyModel model(1);
  QuantConfig cfg;
  cfg.group_size = 32;
  // 8 KiB shards: the tiny model (~40 KB) must be split into several files.
  Status st = write_tiny(model, cfg, out, src, {}, 8 << 10);
  ASSERT_TRUE(st.ok()) << st.message();
  EXPECT_TRUE(no_temp_left(td.path()));

  const auto files = entries(out);
  for (const char* f : {"config.json", "tokenizer.json", "tokenizer_config.json",
                        "generation_config.json", "model.safetensors.index.json"})
    EXPECT_NE(std::find(files.begin(), files.end(), f), files.end()) << f;
  EXPECT_EQ(std::find(files.begin(), files.end(), "README.md"), files.end());
  EXPECT_EQ(std::find(files.begin(), files.end(), "model.safetensors"), files.end());
  int n_shards = 0;
  for (const auto& f : files) n_shards += f.rfind("model-0000", 0) == 0;
  EXPECT_GE(n_shards, 2) << testing::PrintToString(files);
  EXPECT_NE(std::find(files.begin(), files.end(),
                      "model-00001-of-0000" + std::to_string(n_shards) + ".safetensors"),
            files.end()) << testing::PrintToString(files);
  auto tok = read_text_file((out / "tokenizer.json").string());
  ASSERT_TRUE(tok.ok());
  EXPECT_EQ(*tok, R"({"model": {"type": "BPE"}})");

  auto cfg_text = read_text_file((out / "config.json").string());
  ASSERT_TRUE(cfg_text.ok());
  const auto j = nlohmann::json::parse(*cfg_text);
  EXPECT_EQ(j["torch_dtype"], "float16");
  EXPECT_EQ(j["hidden_size"], 64);
  EXPECT_EQ(j["architectures"][0], "LlamaForCausalLM");
  const auto& q = j["quantization_config"];
  EXPECT_EQ(q["quant_method"], "awq");
  EXPECT_EQ(q["bits"], 4);
  EXPECT_EQ(q["group_size"], 32);
  EXPECT_EQ(q["zero_point"], true);
  EXPECT_EQ(q["version"], "gemm");
  EXPECT_EQ(q["modules_to_not_convert"], nlohmann::json::array({"lm_head"}));
  EXPECT_FALSE(j.contains("awq_cpp_fake_quantization"));

  auto sto = SafeTensors::open(out.string());
  ASSERT_TRUE(sto.ok()) << sto.error().message;
  const SafeTensors& sf = *sto;
  for (const auto& l : model.linears) {
    SCOPED_TRACE(l.prefix);
    EXPECT_EQ(sf.find(l.prefix + ".weight"), nullptr);
    const TensorView* qw = sf.find(l.prefix + ".qweight");
    ASSERT_NE(qw, nullptr);
    EXPECT_EQ(qw->dtype, DType::I32);
    EXPECT_EQ(qw->shape, (std::vector<int64_t>{l.K, l.N / 8}));
    EXPECT_EQ(sf.find(l.prefix + ".scales")->shape, (std::vector<int64_t>{l.K / 32, l.N}));
    EXPECT_EQ(sf.find(l.prefix + ".qzeros")->shape, (std::vector<int64_t>{l.K / 32, l.N / 8}));
    auto want = quantize_linear(l.w.data(), l.N, l.K, cfg);
    ASSERT_TRUE(want.ok());
    for (int g : {32, 0}) {  // explicit and inferred group size
      auto got = load_awq_linear(sf, l.prefix, g);
      ASSERT_TRUE(got.ok()) << got.error().message;
      EXPECT_EQ(got->q, want->q);
      EXPECT_EQ(got->zeros, want->zeros);
      EXPECT_EQ(got->scales, want->scales);
      EXPECT_EQ(got->group_size, 32);
    }
    if (!l.bias.empty()) {
      const TensorView* b = sf.find(l.prefix + ".bias");
      ASSERT_NE(b, nullptr);
      EXPECT_EQ(b->dtype, DType::F16);
      auto bf = sf.to_f32(l.prefix + ".bias");
      ASSERT_TRUE(bf.ok());
      for (int n = 0; n < l.N; ++n) EXPECT_EQ((*bf)[n], round_fp16(l.bias[n]));
    } else {
      EXPECT_EQ(sf.find(l.prefix + ".bias"), nullptr);
    }
  }
  const TensorView* emb = sf.find("model.embed_tokens.weight");
  ASSERT_NE(emb, nullptr);
  EXPECT_EQ(emb->dtype, DType::F16);
  auto embf = sf.to_f32("model.embed_tokens.weight", {100, 64});
  ASSERT_TRUE(embf.ok());
  for (size_t i = 0; i < model.embed.size(); ++i) ASSERT_EQ((*embf)[i], round_fp16(model.embed[i]));
  // group size that does not match the file
  auto bad = load_awq_linear(sf, model.linears[0].prefix, 64);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message.find("expected [1, 64]"), std::string::npos) << bad.error().message;
}

TEST(AwqCheckpoint, NoModulesToNotConvertIsNull) {
  auto text = awq_checkpoint_config_json(R"({"a": 1, "quantization_config": {"x": 1}})",
                                         QuantConfig{}, {});
  ASSERT_TRUE(text.ok());
  const auto j = nlohmann::json::parse(*text);
  EXPECT_TRUE(j["quantization_config"]["modules_to_not_convert"].is_null());
  EXPECT_FALSE(j["quantization_config"].contains("x"));
  EXPECT_EQ(j["quantization_config"]["group_size"], 128);
  EXPECT_EQ(j["a"], 1);
  EXPECT_FALSE(awq_checkpoint_config_json("[1, 2]", QuantConfig{}, {}).ok());
  EXPECT_FALSE(awq_checkpoint_config_json("{", QuantConfig{}, {}).ok());
  // per-channel keeps AutoAWQ's -1
  QuantConfig pc;
  pc.group_size = -1;
  EXPECT_EQ(nlohmann::json::parse(*awq_checkpoint_config_json("{}", pc, {}))["quantization_config"]
                ["group_size"], -1);
}

// w_bit 3/8 (and symmetric): fp16 .weight on the quantization grid, no quantization_config.
TEST(AwqCheckpoint, NonGemmConfigsWriteFakeQuantizedFp16) {
  TempDir td;
  const fs::path out = td.path() / "tiny-w3";
  const TinyModel model(2);
  QuantConfig cfg;
  cfg.w_bit = 3;
  cfg.group_size = 32;
  Status st = write_tiny(model, cfg, out, {}, {}, size_t(1) << 30);
  ASSERT_TRUE(st.ok()) << st.message();
  EXPECT_EQ(entries(out), (std::vector<std::string>{"config.json", "model.safetensors"}));
  const auto j = nlohmann::json::parse(*read_text_file((out / "config.json").string()));
  EXPECT_FALSE(j.contains("quantization_config"));
  EXPECT_EQ(j["awq_cpp_fake_quantization"]["bits"], 3);
  EXPECT_EQ(j["awq_cpp_fake_quantization"]["group_size"], 32);
  auto sf = SafeTensors::open(out.string());
  ASSERT_TRUE(sf.ok());
  const auto& l = model.linears[2];
  EXPECT_EQ(sf->find(l.prefix + ".qweight"), nullptr);
  auto w = sf->to_f32(l.prefix + ".weight", {l.N, l.K});
  ASSERT_TRUE(w.ok()) << w.error().message;
  auto fqw = l.w;
  fake_quantize(fqw.data(), l.N, l.K, cfg);
  for (size_t i = 0; i < fqw.size(); ++i) ASSERT_EQ((*w)[i], round_fp16(fqw[i])) << i;
}

TEST(AwqCheckpoint, DestructionWithoutFinishRemovesTempDir) {
  TempDir td;
  const fs::path out = td.path() / "partial";
  std::vector<float> w(64 * 64, 0.01f);
  {
    auto wr = AwqCheckpointWriter::create(out.string(), QuantConfig{}, false, 4096);
    ASSERT_TRUE(wr.ok()) << wr.error().message;
    EXPECT_TRUE(fs::is_directory(wr->temp_dir()));
    EXPECT_EQ(wr->temp_dir(), out.string() + ".tmp-" + std::to_string(::getpid()));
    ASSERT_TRUE(wr->add_fp16("a.weight", {64, 64}, w.data()).ok());
    ASSERT_TRUE(wr->add_fp16("b.weight", {64, 64}, w.data()).ok());  // forces a flushed shard
    EXPECT_GE(entries(wr->temp_dir()).size(), 1u);
    // moving the writer keeps one owner of the temp dir
    AwqCheckpointWriter moved = std::move(*wr);
    EXPECT_TRUE(fs::is_directory(moved.temp_dir()));
  }
  EXPECT_EQ(entries(td.path()), std::vector<std::string>{});
  // explicit abort
  auto wr = AwqCheckpointWriter::create(out.string(), QuantConfig{}, false);
  ASSERT_TRUE(wr.ok());
  wr->abort();
  EXPECT_EQ(entries(td.path()), std::vector<std::string>{});
  EXPECT_FALSE(wr->add_fp16("a.weight", {64, 64}, w.data()).ok());
  EXPECT_FALSE(wr->finish("", "{}", {}).ok());
}

TEST(AwqCheckpoint, FailedFinishLeavesNoOutput) {
  TempDir td;
  const fs::path out = td.path() / "bad";
  std::vector<float> w(16, 0.5f);
  {
    auto wr = AwqCheckpointWriter::create(out.string(), QuantConfig{}, false);
    ASSERT_TRUE(wr.ok());
    ASSERT_TRUE(wr->add_fp16("a.weight", {16}, w.data()).ok());
    Status st = wr->finish("", "this is not json", {});
    EXPECT_FALSE(st.ok());
    EXPECT_FALSE(fs::exists(out));
  }
  EXPECT_EQ(entries(td.path()), std::vector<std::string>{});
  // a layer quantized with another config is refused
  auto wr = AwqCheckpointWriter::create(out.string(), QuantConfig{}, false);
  ASSERT_TRUE(wr.ok());
  QuantConfig c64;
  c64.group_size = 64;
  std::vector<float> m(8 * 128, 0.1f);
  auto ql = quantize_linear(m.data(), 8, 128, c64);
  ASSERT_TRUE(ql.ok());
  Status st = wr->add_quantized("x", *ql, nullptr);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("group_size 128"), std::string::npos) << st.message();
  QuantConfig c128;
  auto ql12 = quantize_linear(std::vector<float>(12 * 128, 0.1f).data(), 12, 128, c128);
  ASSERT_TRUE(ql12.ok());
  st = wr->add_quantized("model.layers.3.mlp.odd", *ql12, nullptr);  // N = 12: not packable
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("model.layers.3.mlp.odd"), std::string::npos) << st.message();
}

TEST(AwqCheckpoint, CreateErrorsAndOverwrite) {
  TempDir td;
  auto missing_parent = AwqCheckpointWriter::create((td.path() / "no/such/dir").string(),
                                                    QuantConfig{}, false);
  ASSERT_FALSE(missing_parent.ok());
  EXPECT_NE(missing_parent.error().message.find("does not exist"), std::string::npos);

  const fs::path out = td.path() / "out";
  fs::create_directories(out);
  write_text(out / "old_file.txt", "old");
  auto exists = AwqCheckpointWriter::create(out.string(), QuantConfig{}, false);
  ASSERT_FALSE(exists.ok());
  EXPECT_NE(exists.error().message.find("already exists"), std::string::npos);
  EXPECT_TRUE(fs::exists(out / "old_file.txt"));

  write_text(td.path() / "a_file", "x");
  EXPECT_FALSE(AwqCheckpointWriter::create((td.path() / "a_file").string(), QuantConfig{}, true).ok());

  if (::geteuid() != 0) {  // root ignores permission bits
    const fs::path ro = td.path() / "readonly";
    fs::create_directories(ro);
    ::chmod(ro.c_str(), 0555);
    auto r = AwqCheckpointWriter::create((ro / "x").string(), QuantConfig{}, false);
    ::chmod(ro.c_str(), 0755);
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.error().message.find("not writable"), std::string::npos);
  }

  // overwrite: the old directory is replaced as a whole, nothing left over
  const TinyModel model(3);
  QuantConfig cfg;
  cfg.group_size = 64;
  Status st = write_tiny(model, cfg, out.string() + "/", {}, {}, size_t(1) << 30, true);
  ASSERT_TRUE(st.ok()) << st.message();
  EXPECT_EQ(entries(out), (std::vector<std::string>{"config.json", "model.safetensors"}));
  EXPECT_TRUE(no_temp_left(td.path()));
}

TEST(AwqCheckpoint, LoadErrorsNameTheTensor) {
  TempDir td;
  const fs::path dir = td.path() / "ck";
  fs::create_directories(dir);
  {
    SafeTensorsWriter w(dir.string());
    std::vector<int32_t> qw(128 * 2), qz_bad(2 * 3);
    std::vector<uint16_t> sc(1 * 16, 0x3C00);
    std::vector<float> f(128 * 2);
    ASSERT_TRUE(w.add("a.qweight", DType::I32, {128, 2}, qw.data(), qw.size() * 4).ok());
    ASSERT_TRUE(w.add("a.qzeros", DType::I32, {2, 3}, qz_bad.data(), qz_bad.size() * 4).ok());
    ASSERT_TRUE(w.add("a.scales", DType::F16, {2, 16}, std::vector<uint16_t>(32).data(), 64).ok());
    ASSERT_TRUE(w.add("b.qweight", DType::F32, {128, 2}, f.data(), f.size() * 4).ok());
    ASSERT_TRUE(w.add("c.qweight", DType::I32, {128, 2}, qw.data(), qw.size() * 4).ok());
    ASSERT_TRUE(w.add("c.qzeros", DType::I32, {1, 2}, qz_bad.data(), 8).ok());
    ASSERT_TRUE(w.add("c.scales", DType::F16, {1, 16}, sc.data(), sc.size() * 2).ok());
    ASSERT_TRUE(w.finish().ok());
  }
  auto sf = SafeTensors::open(dir.string());
  ASSERT_TRUE(sf.ok()) << sf.error().message;
  auto e = load_awq_linear(*sf, "a", 64);
  ASSERT_FALSE(e.ok());
  EXPECT_NE(e.error().message.find("'a.qzeros' has shape [2, 3], expected [2, 2]"), std::string::npos)
      << e.error().message;
  e = load_awq_linear(*sf, "b", 64);
  ASSERT_FALSE(e.ok());
  EXPECT_NE(e.error().message.find("'b.qweight' has dtype F32, expected I32"), std::string::npos)
      << e.error().message;
  e = load_awq_linear(*sf, "missing", 64);
  ASSERT_FALSE(e.ok());
  EXPECT_NE(e.error().message.find("'missing.qweight' is missing"), std::string::npos);
  e = load_awq_linear(*sf, "c", 64);  // scales say 1 group: G = 128, not 64
  ASSERT_FALSE(e.ok());
  EXPECT_NE(e.error().message.find("expected [2, 16]"), std::string::npos) << e.error().message;
  auto ok = load_awq_linear(*sf, "c", -1);
  ASSERT_TRUE(ok.ok()) << ok.error().message;
  EXPECT_EQ(ok->group_size, 128);
  EXPECT_EQ(ok->N, 16);
  EXPECT_EQ(ok->K, 128);
}

// ---- the independent Python format check -----------------------------------------------------

bool python_ready() {
  return std::system("python3 -c 'import numpy, safetensors' >/dev/null 2>&1") == 0;
}

int run_checker(const fs::path& ckpt, const fs::path& ref) {
  const std::string cmd = std::string("python3 ") + AWQ_SOURCE_DIR + "/scripts/check_awq_format.py '" +
                          ckpt.string() + "' --reference '" + ref.string() + "'";
  const int rc = std::system(cmd.c_str());
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

TEST(AwqFormat, PythonAutoAwqUnpackMatchesBitExact) {
  if (!python_ready()) {
    if (std::getenv("CI")) FAIL() << "CI needs python3 with numpy and safetensors";
    GTEST_SKIP() << "python3 with numpy + safetensors not available";
  }
  TempDir td;
  const fs::path out = td.path() / "tiny-awq", ref = td.path() / "reference";
  fs::create_directories(ref);
  const TinyModel model(4);
  for (int g : {32, 64, -1}) {
    SCOPED_TRACE(g);
    QuantConfig cfg;
    cfg.group_size = g;
    fs::remove_all(ref);
    fs::create_directories(ref);
    Status st = write_tiny(model, cfg, out, make_src_dir(td.path()), ref, 16 << 10, true);
    ASSERT_TRUE(st.ok()) << st.message();
    EXPECT_EQ(run_checker(out, ref / "model.safetensors"), 0);
  }
  // AWQ_KEEP_TINY_CKPT=DIR keeps a copy (DIR/tiny-awq, DIR/reference) for manual checks with
  // other loaders (docs/FORMAT.md).
  if (const char* keep = std::getenv("AWQ_KEEP_TINY_CKPT")) {
    QuantConfig cfg;
    cfg.group_size = 32;
    fs::create_directories(fs::path(keep) / "reference");
    Status st = write_tiny(model, cfg, fs::path(keep) / "tiny-awq", make_src_dir(td.path()),
                           fs::path(keep) / "reference", 16 << 10, true);
    ASSERT_TRUE(st.ok()) << st.message();
  }
  // The checker must be able to fail: perturb one reference weight by one fp32 ulp.
  {
    auto sf = SafeTensors::open((ref / "model.safetensors").string());
    ASSERT_TRUE(sf.ok());
    std::vector<std::pair<std::string, std::vector<float>>> all;
    for (const auto& n : sf->names()) all.emplace_back(n, *sf->to_f32(n));
    const fs::path bad = td.path() / "reference_bad";
    fs::create_directories(bad);
    SafeTensorsWriter w(bad.string());
    for (auto& [n, v] : all) {
      if (n == "model.layers.0.mlp.down_proj.weight") v[77] = std::nextafter(v[77], 1.0f);
      std::vector<int64_t> shape = sf->find(n)->shape;
      ASSERT_TRUE(w.add_f32(n, DType::F32, shape, v.data()).ok());
    }
    ASSERT_TRUE(w.finish().ok());
    EXPECT_EQ(run_checker(out, bad / "model.safetensors"), 1);
  }
}

// ---- compressed-tensors (pack-quantized) ----------------------------------------------------

// Every config the layout defines: asymmetric and symmetric, 4 and 8 bits, group and channel.
std::vector<QuantConfig> ct_configs() {
  std::vector<QuantConfig> v;
  for (int b : {4, 8})
    for (int g : {32, 64, -1})
      for (bool zp : {true, false}) {
        QuantConfig c;
        c.w_bit = b;
        c.group_size = g;
        c.zero_point = zp;
        v.push_back(c);
      }
  QuantConfig w3;  // a width whose values straddle int32 words
  w3.w_bit = 3;
  w3.group_size = 32;
  v.push_back(w3);
  return v;
}

std::string cfg_name(const QuantConfig& c) {
  return "w" + std::to_string(c.w_bit) + " g" + std::to_string(c.group_size) +
         (c.zero_point ? " zp" : " sym");
}

TEST(CtCheckpoint, WritesPackQuantizedTensorsAndConfig) {
  TempDir td;
  const TinyModel model(5);
  for (const QuantConfig& cfg : ct_configs()) {
    SCOPED_TRACE(cfg_name(cfg));
    const fs::path out = td.path() / "tiny-ct";
    Status st = write_tiny(model, cfg, out, make_src_dir(td.path()), {}, 8 << 10, true,
                           CheckpointFormat::CompressedTensors);
    ASSERT_TRUE(st.ok()) << st.message();
    EXPECT_TRUE(no_temp_left(td.path()));
    const auto j = nlohmann::json::parse(*read_text_file((out / "config.json").string()));
    const auto& q = j["quantization_config"];
    EXPECT_EQ(q["quant_method"], "compressed-tensors");
    EXPECT_EQ(q["format"], "pack-quantized");
    EXPECT_EQ(q["ignore"], nlohmann::json::array({"lm_head", "re:.*lm_head.*"}));
    const auto& w = q["config_groups"]["group_0"]["weights"];
    EXPECT_EQ(w["num_bits"], cfg.w_bit);
    EXPECT_EQ(w["symmetric"], !cfg.zero_point);
    EXPECT_EQ(w["strategy"], cfg.group_size > 0 ? "group" : "channel");
    EXPECT_EQ(j["torch_dtype"], "float16");
    auto sto = SafeTensors::open(out.string());
    ASSERT_TRUE(sto.ok()) << sto.error().message;
    for (const auto& l : model.linears) {
      SCOPED_TRACE(l.prefix);
      const int G = cfg.group_size > 0 ? cfg.group_size : l.K, ng = l.K / G, b = cfg.w_bit;
      EXPECT_EQ(sto->find(l.prefix + ".weight"), nullptr);
      EXPECT_EQ(sto->find(l.prefix + ".qweight"), nullptr);
      const TensorView* pk = sto->find(l.prefix + ".weight_packed");
      ASSERT_NE(pk, nullptr);
      EXPECT_EQ(pk->dtype, DType::I32);
      EXPECT_EQ(pk->shape, (std::vector<int64_t>{l.N, (l.K * b + 31) / 32}));
      const TensorView* sc = sto->find(l.prefix + ".weight_scale");
      ASSERT_NE(sc, nullptr);
      EXPECT_EQ(sc->dtype, DType::F16);
      EXPECT_EQ(sc->shape, (std::vector<int64_t>{l.N, ng}));
      const TensorView* zp = sto->find(l.prefix + ".weight_zero_point");
      if (cfg.zero_point) {
        ASSERT_NE(zp, nullptr);
        EXPECT_EQ(zp->dtype, DType::I32);
        EXPECT_EQ(zp->shape, (std::vector<int64_t>{(l.N * b + 31) / 32, ng}));
      } else {
        EXPECT_EQ(zp, nullptr);
      }
      const TensorView* shp = sto->find(l.prefix + ".weight_shape");
      ASSERT_NE(shp, nullptr);
      EXPECT_EQ(shp->dtype, DType::I64);
      int64_t dims[2];
      std::memcpy(dims, shp->data, sizeof(dims));
      EXPECT_EQ(dims[0], l.N);
      EXPECT_EQ(dims[1], l.K);
      // Independent of the writer: decode word 0 of row 0 by hand from the quantized codes.
      auto ql = quantize_linear(l.w.data(), l.N, l.K, cfg);
      ASSERT_TRUE(ql.ok());
      uint64_t want = 0;
      for (int i = 0; i * b < 32 && i < l.K; ++i) want |= uint64_t(ql->q[i]) << (i * b);
      int32_t word0;
      std::memcpy(&word0, pk->data, 4);
      EXPECT_EQ(uint32_t(word0), uint32_t(want));
    }
  }
}

// Our engine reads the checkpoint back: fp32 weights are exactly the weights the search
// evaluated ((q - z) * s), and the W4 kernels' matrix (keep_w4) holds the same values.
TEST(CtCheckpoint, EngineLoadsExactlyOurDequantizedWeights) {
  TempDir td;
  const TinyModel model(6);
  for (const QuantConfig& cfg : ct_configs()) {
    SCOPED_TRACE(cfg_name(cfg));
    const fs::path out = td.path() / "tiny-ct";
    Status st = write_tiny(model, cfg, out, make_src_dir(td.path()), {}, 8 << 10, true,
                           CheckpointFormat::CompressedTensors);
    ASSERT_TRUE(st.ok()) << st.message();
    for (bool keep_w4 : {false, true}) {
      LoadOptions lo;
      lo.keep_w4 = keep_w4;
      lo.lm_head = LmHeadFormat::F16;
      auto m = load_model(out.string(), lo);
      ASSERT_TRUE(m.ok()) << m.error().message;
      EXPECT_EQ(m->cfg.quant.method, QuantizationInfo::Method::CompressedTensors);
      const char* names[] = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj",
                             "down_proj"};
      for (size_t i = 0; i < model.linears.size(); ++i) {
        const auto& l = model.linears[i];
        SCOPED_TRACE(l.prefix);
        const Linear& got = m->blocks[0].linear(names[i]);
        auto ql = quantize_linear(l.w.data(), l.N, l.K, cfg);
        ASSERT_TRUE(ql.ok());
        std::vector<float> want(size_t(l.N) * l.K), have(want.size());
        dequantize_linear(*ql, want.data());
        if (got.w4) {
          EXPECT_TRUE(keep_w4 && cfg.w_bit == 4);
          w4_dequantize(*got.w4, have.data());
        } else {
          EXPECT_FALSE(keep_w4 && cfg.w_bit == 4);
          have = got.weight;
        }
        ASSERT_EQ(have.size(), want.size());
        for (size_t k = 0; k < want.size(); ++k) ASSERT_EQ(have[k], want[k]) << k;
        ASSERT_EQ(got.bias.size(), l.bias.size());
        for (size_t k = 0; k < l.bias.size(); ++k) EXPECT_EQ(got.bias[k], round_fp16(l.bias[k]));
      }
    }
  }
}

TEST(CtCheckpoint, CorruptTensorsAreRefusedNamingTheTensor) {
  TempDir td;
  const TinyModel model(8);
  QuantConfig cfg;
  cfg.group_size = 32;
  const fs::path out = td.path() / "tiny-ct";
  ASSERT_TRUE(write_tiny(model, cfg, out, {}, {}, size_t(1) << 30, false,
                         CheckpointFormat::CompressedTensors).ok());
  auto sf = SafeTensors::open(out.string());
  ASSERT_TRUE(sf.ok());
  const std::string p = model.linears[0].prefix;  // q_proj: N 64, K 64
  auto e = load_ct_linear(*sf, p, {4, 64, false}, 64, 64);  // file has 2 groups, not 1
  ASSERT_FALSE(e.ok());
  EXPECT_NE(e.error().message.find("'" + p + ".weight_scale' has shape [64, 2], expected [64, 1]"),
            std::string::npos) << e.error().message;
  e = load_ct_linear(*sf, p, {4, 32, false}, 64, 128);
  ASSERT_FALSE(e.ok());
  EXPECT_NE(e.error().message.find(".weight_shape' is [64, 64], expected [64, 128]"),
            std::string::npos) << e.error().message;
  e = load_ct_linear(*sf, p, {4, 32, true}, 64, 64);  // zero points present but config symmetric
  ASSERT_FALSE(e.ok());
  EXPECT_NE(e.error().message.find("weight_zero_point is present"), std::string::npos);
  e = load_ct_linear(*sf, "missing", {4, 32, false}, 64, 64);
  ASSERT_FALSE(e.ok());
  EXPECT_NE(e.error().message.find("'missing.weight_shape' is missing"), std::string::npos);
  e = load_ct_linear(*sf, p, {4, 32, false}, 64, 64);
  EXPECT_TRUE(e.ok()) << e.error().message;
}

TEST(CtCheckpoint, UnsupportedConfigIsRefusedByTheModelLoader) {
  TempDir td;
  const TinyModel model(9);
  QuantConfig cfg;
  cfg.group_size = 32;
  const fs::path out = td.path() / "tiny-ct";
  ASSERT_TRUE(write_tiny(model, cfg, out, {}, {}, size_t(1) << 30, false,
                         CheckpointFormat::CompressedTensors).ok());
  auto j = nlohmann::json::parse(*read_text_file((out / "config.json").string()));
  j["quantization_config"]["config_groups"]["group_0"]["input_activations"] = {
      {"num_bits", 8}, {"type", "int"}, {"strategy", "token"}, {"dynamic", true}};
  write_text(out / "config.json", j.dump(2));
  auto m = load_model(out.string());
  ASSERT_FALSE(m.ok());
  EXPECT_NE(m.error().message.find("config_groups.group_0.input_activations"), std::string::npos)
      << m.error().message;
  EXPECT_NE(m.error().message.find("config.json"), std::string::npos) << m.error().message;
}

// The compressed-tensors library itself (scripts/check_ct_format.py) decompresses our checkpoint
// to exactly our dequantized weights rounded to fp16 once (it dequantizes in the scale dtype).
bool ct_python_ready() {
  // find_spec only: importing torch takes seconds
  return std::system("python3 -c 'import importlib.util as u, sys; sys.exit(0 if all(u.find_spec(m) "
                     "for m in (\"compressed_tensors\", \"torch\", \"safetensors\")) else 1)' "
                     ">/dev/null 2>&1") == 0;
}

// One python run (importing torch takes long) over (checkpoint, reference) pairs; returns the
// per-pair verdict lines "OK" / "MISMATCH" / "ERROR".
std::vector<std::string> run_ct_checker(const std::vector<std::pair<fs::path, fs::path>>& pairs) {
  std::string cmd = std::string("python3 ") + AWQ_SOURCE_DIR + "/scripts/check_ct_format.py --pairs";
  for (const auto& [c, r] : pairs) cmd += " '" + c.string() + "' '" + r.string() + "'";
  std::vector<std::string> out;
  FILE* p = ::popen(cmd.c_str(), "r");
  if (!p) return out;
  char line[4096];
  while (std::fgets(line, sizeof line, p)) {
    std::string l(line);
    std::fputs(line, stdout);
    if (l.rfind("RESULT ", 0) == 0) {
      const size_t sp = l.find(' ', 7);
      std::string v = l.substr(sp + 1);
      while (!v.empty() && (v.back() == '\n' || v.back() == '\r')) v.pop_back();
      out.push_back(v);
    }
  }
  ::pclose(p);
  return out;
}

TEST(CtFormat, CompressedTensorsLibraryDecompressesToOurWeights) {
  if (!ct_python_ready()) {
    if (std::getenv("CI")) FAIL() << "CI needs python3 with compressed-tensors and torch (make py-ref)";
    GTEST_SKIP() << "python3 with compressed-tensors + torch not available (make py-ref)";
  }
  TempDir td;
  const TinyModel model(10);
  std::vector<std::pair<fs::path, fs::path>> pairs;
  const std::vector<QuantConfig> cfgs = ct_configs();
  for (size_t i = 0; i < cfgs.size(); ++i) {
    SCOPED_TRACE(cfg_name(cfgs[i]));
    const fs::path out = td.path() / ("tiny-ct-" + std::to_string(i));
    const fs::path ref = td.path() / ("reference-" + std::to_string(i));
    fs::create_directories(ref);
    ASSERT_TRUE(write_tiny(model, cfgs[i], out, make_src_dir(td.path()), ref, 16 << 10, false,
                           CheckpointFormat::CompressedTensors).ok());
    pairs.emplace_back(out, ref / "model.safetensors");
  }
  // The checker must be able to fail: one reference weight of the first checkpoint moved by one
  // fp16 ulp.
  {
    auto sf = SafeTensors::open(pairs[0].second.string());
    ASSERT_TRUE(sf.ok());
    std::vector<std::pair<std::string, std::vector<float>>> all;
    for (const auto& n : sf->names()) all.emplace_back(n, *sf->to_f32(n));
    const fs::path bad = td.path() / "reference_bad";
    fs::create_directories(bad);
    SafeTensorsWriter w(bad.string());
    for (auto& [n, v] : all) {
      if (n == "model.layers.0.mlp.up_proj.weight") {
        const float x = round_fp16(v[123]);
        v[123] = fp16_to_f32(uint16_t(f32_to_fp16(x) + 1));
      }
      ASSERT_TRUE(w.add_f32(n, DType::F32, sf->find(n)->shape, v.data()).ok());
    }
    ASSERT_TRUE(w.finish().ok());
    pairs.emplace_back(pairs[0].first, bad / "model.safetensors");
  }
  const auto verdicts = run_ct_checker(pairs);
  ASSERT_EQ(verdicts.size(), pairs.size());
  for (size_t i = 0; i < cfgs.size(); ++i) EXPECT_EQ(verdicts[i], "OK") << cfg_name(cfgs[i]);
  EXPECT_EQ(verdicts.back(), "MISMATCH");
}

}  // namespace
}  // namespace awq
