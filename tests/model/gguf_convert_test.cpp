// GGUF -> HF conversion (model/gguf_convert.h): tensor names and layouts per architecture
// against gguf-py / Transformers references, config and tokenizer documents, refusals.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "io/gguf.h"
#include "io/safetensors.h"
#include "io/tokenizer.h"
#include "model/gguf_convert.h"

namespace fs = std::filesystem;
using namespace awq;

namespace {
std::string fixture(const std::string& name) {
  return std::string(AWQ_SOURCE_DIR) + "/tests/fixtures/io/" + name;
}

std::string read_all(const std::string& p) {
  std::ifstream f(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}
}  // namespace

// ---- conversion ----

TEST(GGUFConvert, TensorNames) {
  EXPECT_EQ(*llama_hf_tensor_name("blk.12.attn_q.weight"),
            "model.layers.12.self_attn.q_proj.weight");
  EXPECT_EQ(*llama_hf_tensor_name("blk.0.ffn_norm.weight"),
            "model.layers.0.post_attention_layernorm.weight");
  EXPECT_EQ(*llama_hf_tensor_name("output.weight"), "lm_head.weight");
  EXPECT_EQ(*llama_hf_tensor_name("rope_freqs.weight"), "");
  EXPECT_FALSE(llama_hf_tensor_name("blk.0.attn_qkv.weight").ok());
}

TEST(GGUFConvert, UnpermuteMatchesTransformersMapping) {
  // 2 heads of head_dim 4, 1 column: GGUF row 2i+j of a head is HF row j*2+i.
  std::vector<float> w = {0, 1, 2, 3, 10, 11, 12, 13};
  ASSERT_TRUE(unpermute_qk_rows(w.data(), 8, 1, 2).ok());
  EXPECT_EQ(w, (std::vector<float>{0, 2, 1, 3, 10, 12, 11, 13}));
  EXPECT_FALSE(unpermute_qk_rows(w.data(), 6, 1, 2).ok());
}

namespace {
struct OutDir {
  std::string p;
  OutDir() {
    p = (fs::temp_directory_path() / ("awq_conv_test_" + std::to_string(getpid()) + "_" +
                                      ::testing::UnitTest::GetInstance()->current_test_info()->name()))
            .string();
    fs::remove_all(p);
  }
  ~OutDir() { fs::remove_all(p); }
};

// Convert a GGUF image held in memory (a fixture with bytes patched) into `out_dir`, through a
// temporary file beside it that is removed again.
Status convert_image(const std::string& img, const std::string& out_dir) {
  const std::string path = out_dir + ".gguf";
  std::ofstream(path, std::ios::binary).write(img.data(), std::streamsize(img.size()));
  ConvertOptions o;
  o.progress = false;
  Status s = convert_gguf_to_hf(path, out_dir, o);
  fs::remove(path);
  return s;
}
}  // namespace

TEST(GGUFConvert, TinyLlamaMatchesPythonReference) {
  OutDir out;
  ConvertOptions o;
  o.progress = false;
  Status s = convert_gguf_to_hf(fixture("tiny_llama.gguf"), out.p, o);
  ASSERT_TRUE(s.ok()) << s.message();
  EXPECT_FALSE(fs::exists(out.p + ".tmp-" + std::to_string(getpid())));
  auto ours = SafeTensors::open(out.p);
  ASSERT_TRUE(ours.ok()) << ours.error().message;
  auto ref = SafeTensors::open(fixture("tiny_llama.expected.safetensors"));
  ASSERT_TRUE(ref.ok()) << ref.error().message;
  EXPECT_EQ(ours->names(), ref->names());
  for (const auto& n : ref->names()) {
    const TensorView* a = ours->find(n);
    const TensorView* b = ref->find(n);
    ASSERT_NE(a, nullptr) << n;
    EXPECT_EQ(a->dtype, DType::F32) << n;
    EXPECT_EQ(a->shape, b->shape) << n;
    ASSERT_EQ(a->nbytes, b->nbytes) << n;
    EXPECT_EQ(std::memcmp(a->data, b->data, a->nbytes), 0) << n << " differs from gguf-py";
  }
  auto cfg = nlohmann::json::parse(read_all(out.p + "/config.json"));
  EXPECT_EQ(cfg["architectures"][0], "LlamaForCausalLM");
  EXPECT_EQ(cfg["hidden_size"], 64);
  EXPECT_EQ(cfg["intermediate_size"], 128);
  EXPECT_EQ(cfg["num_hidden_layers"], 2);
  EXPECT_EQ(cfg["num_attention_heads"], 4);
  EXPECT_EQ(cfg["num_key_value_heads"], 2);
  EXPECT_EQ(cfg["max_position_embeddings"], 512);
  EXPECT_EQ(cfg["tie_word_embeddings"], false);
  EXPECT_EQ(cfg["bos_token_id"], 1);
  EXPECT_EQ(cfg["eos_token_id"], 2);
  EXPECT_EQ(cfg["torch_dtype"], "float32");
  EXPECT_NEAR(cfg["rms_norm_eps"].get<double>(), 1e-5, 1e-10);

  // tokenizer.json equals what Transformers builds from the same GGUF, section by section.
  auto ours_tok = nlohmann::json::parse(read_all(out.p + "/tokenizer.json"));
  auto hf_tok = nlohmann::json::parse(read_all(fixture("tiny_llama.tokenizer.json")));
  for (const char* k : {"added_tokens", "normalizer", "pre_tokenizer", "post_processor", "decoder"})
    EXPECT_EQ(ours_tok[k], hf_tok[k]) << k << "\nours: " << ours_tok[k].dump()
                                      << "\nhf:   " << hf_tok[k].dump();
  for (auto it = hf_tok["model"].begin(); it != hf_tok["model"].end(); ++it)
    EXPECT_EQ(ours_tok["model"][it.key()], it.value()) << "model." << it.key();

  auto tc = nlohmann::json::parse(read_all(out.p + "/tokenizer_config.json"));
  EXPECT_EQ(tc["bos_token"], "<|im_start|>");
  EXPECT_EQ(tc["eos_token"], "<|im_end|>");
  EXPECT_EQ(tc["unk_token"], "<|endoftext|>");
  EXPECT_EQ(tc["add_bos_token"], true);
  EXPECT_EQ(tc["model_max_length"], 512);
  EXPECT_NE(tc["chat_template"].get<std::string>().find("<|im_start|>"), std::string::npos);
  auto gc = nlohmann::json::parse(read_all(out.p + "/generation_config.json"));
  EXPECT_EQ(gc["eos_token_id"], 2);
}

TEST(GGUFConvert, F16OutputAndRefusals) {
  OutDir out;
  ConvertOptions o;
  o.progress = false;
  o.dtype = DType::F16;
  ASSERT_TRUE(convert_gguf_to_hf(fixture("tiny_llama.gguf"), out.p, o).ok());
  auto st = SafeTensors::open(out.p);
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st->find("model.norm.weight")->dtype, DType::F16);
  // existing non-empty output directory is refused, and left alone
  Status again = convert_gguf_to_hf(fixture("tiny_llama.gguf"), out.p, o);
  ASSERT_FALSE(again.ok());
  EXPECT_NE(again.message().find("already exists"), std::string::npos);
  EXPECT_TRUE(fs::exists(out.p + "/model.safetensors"));
  // non-llama architecture
  OutDir out2;
  Status s = convert_gguf_to_hf(fixture("meta.gguf"), out2.p, o);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("general.architecture \"test\""), std::string::npos) << s.message();
  EXPECT_FALSE(fs::exists(out2.p));
}

TEST(GGUFConvert, MixtureOfExpertsRefusedByKey) {
  OutDir out;
  ConvertOptions o;
  o.progress = false;
  Status s = convert_gguf_to_hf(fixture("qwen2_moe_meta.gguf"), out.p, o);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("qwen2.expert_count = 8"), std::string::npos) << s.message();
  EXPECT_FALSE(fs::exists(out.p));
}

// A Mixtral GGUF (llama.cpp's converter output, tests/fixtures/model/gguf) with one layer's
// stacked down-projection experts renamed to a layer that does not exist: refused naming the
// missing tensor, nothing written.
TEST(GGUFConvert, MixtralNeedsEveryExpertTensor) {
  std::string img = read_all(std::string(AWQ_SOURCE_DIR) + "/tests/fixtures/model/gguf/tiny_mixtral.gguf");
  const std::string from = "blk.1.ffn_down_exps", to = "blk.7.ffn_down_exps";
  const size_t at = img.find(from);
  ASSERT_NE(at, std::string::npos);
  img.replace(at, from.size(), to);
  OutDir out;
  Status s = convert_image(img, out.p);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("missing tensor for blk.1.ffn_down_exps.weight"), std::string::npos)
      << s.message();
  EXPECT_FALSE(fs::exists(out.p));
}

TEST(GGUFConvert, UnsupportedBlockTypeRefusedAndTempRemoved) {
  // tiny_llama with blk.0.attn_q.weight's type patched from Q4_0 to IQ4_NL, which has the
  // same block layout size (32 weights in 18 bytes) but which we do not dequantize.
  std::string img = read_all(fixture("tiny_llama.gguf"));
  auto g = GGUFFile::parse(reinterpret_cast<const uint8_t*>(img.data()), img.size(), "t");
  ASSERT_TRUE(g.ok());
  const GGUFTensor* q = g->find_tensor("blk.0.attn_q.weight");
  ASSERT_NE(q, nullptr);
  ASSERT_EQ(q->type, uint32_t(GGMLType::Q4_0));
  // find the tensor info: name string followed by n_dims, dims, type
  const std::string key = std::string("blk.0.attn_q.weight");
  size_t pos = img.find(key);
  ASSERT_NE(pos, std::string::npos);
  pos += key.size() + 4 + 8 * 2;  // n_dims, 2 dims
  uint32_t t;
  std::memcpy(&t, img.data() + pos, 4);
  ASSERT_EQ(t, uint32_t(GGMLType::Q4_0));
  t = uint32_t(GGMLType::IQ4_NL);
  std::memcpy(img.data() + pos, &t, 4);
  OutDir out;
  Status s = convert_image(img, out.p);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("blk.0.attn_q.weight"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("IQ4_NL"), std::string::npos) << s.message();
  EXPECT_FALSE(fs::exists(out.p));
  EXPECT_FALSE(fs::exists(out.p + ".tmp-" + std::to_string(getpid())));
}

// SentencePiece vocabularies in non-Gemma GGUFs (Mistral, Mixtral, Llama 2: LlamaTokenizer;
// Phi-3: its normalizer form), written by llama.cpp's converter from a trained SentencePiece
// model (scripts/gen_gguf_arch_fixtures.py --spm). The tokenizer.json we build must tokenize and
// decode as Transformers' own GGUF tokenizer does on every case it recorded.
class GgufSentencePiece : public ::testing::TestWithParam<std::string> {};

TEST_P(GgufSentencePiece, TokenizesAsTransformersGgufTokenizer) {
  const std::string dir = std::string(AWQ_SOURCE_DIR) + "/tests/fixtures/tokenizer/gguf_spm/";
  auto g = GGUFFile::open(dir + GetParam() + ".gguf");
  ASSERT_TRUE(g.ok()) << g.error().message;
  auto tj = build_tokenizer_json(*g);
  ASSERT_TRUE(tj.ok()) << tj.error().message;
  OutDir out;
  fs::create_directories(out.p);
  const std::string path = out.p + "/tokenizer.json";
  std::ofstream(path) << *tj;
  auto tk = Tokenizer::load(path);
  ASSERT_TRUE(tk.ok()) << tk.error().message;
  const auto cases = nlohmann::json::parse(read_all(dir + GetParam() + ".cases.json"))["cases"];
  ASSERT_GT(cases.size(), 100u);
  auto ids = [](const nlohmann::json& j) { return j.get<std::vector<int32_t>>(); };
  size_t bad = 0;
  for (const auto& c : cases) {
    const std::string text = c["text"];
    SCOPED_TRACE("text: \"" + text.substr(0, 60) + "\"");
    bad += tk->encode(text, true) != ids(c["ids"]);
    EXPECT_EQ(tk->encode(text, true), ids(c["ids"]));
    EXPECT_EQ(tk->encode(text, false), ids(c["ids_no_special"]));
    EXPECT_EQ(tk->decode(ids(c["ids"]), false), c["decode"].get<std::string>());
    EXPECT_EQ(tk->decode(ids(c["ids"]), true), c["decode_skip_special"].get<std::string>());
  }
  EXPECT_EQ(bad, 0u);
  // tokenizer_config.json: BOS added (the file sets it; Transformers' default for this kind too)
  auto tc = build_tokenizer_config_json(*g);
  ASSERT_TRUE(tc.ok()) << tc.error().message;
  EXPECT_EQ(nlohmann::json::parse(*tc)["add_bos_token"], true);
}

INSTANTIATE_TEST_SUITE_P(Gguf, GgufSentencePiece, ::testing::Values("llama", "phi3"));

// A SentencePiece vocabulary without its scores cannot order its merges: refused naming the key.
TEST(GgufSentencePieceErrors, MissingScoresNamed) {
  std::string img =
      read_all(std::string(AWQ_SOURCE_DIR) + "/tests/fixtures/tokenizer/gguf_spm/llama.gguf");
  const std::string key = "tokenizer.ggml.scores";
  const size_t at = img.find(key);
  ASSERT_NE(at, std::string::npos);
  img.replace(at, key.size(), "tokenizer.ggml.scorez");
  auto g = GGUFFile::parse(reinterpret_cast<const uint8_t*>(img.data()), img.size(), "llama.gguf");
  ASSERT_TRUE(g.ok()) << g.error().message;
  auto tj = build_tokenizer_json(*g);
  ASSERT_FALSE(tj.ok());
  EXPECT_NE(tj.error().message.find("missing tokenizer.ggml.scores"), std::string::npos)
      << tj.error().message;
}
