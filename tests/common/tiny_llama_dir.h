// A random Llama written as an HF directory (config.json, tokenizer.json of the tiny_llama3
// fixture, model.safetensors in fp32) for tests that run the quantize pipeline on files.
// Weights are N(0, 0.1) from mt19937(seed) in file order; one residual channel of the embedding
// is scaled up so that AWQ has a salient channel to protect. Uses gtest's EXPECT_* (include
// <gtest/gtest.h> first) and needs AWQ_SOURCE_DIR.
#pragma once
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "io/safetensors.h"

namespace awq::test {

struct TinyLlamaShape {
  int hidden = 64, intermediate = 128, layers = 2, n_heads = 4, n_kv_heads = 2, head_dim = 16;
  unsigned seed = 5;
  int salient_channel = 3;
  float salient_factor = 30.0f;
  std::string arch = "LlamaForCausalLM";
};

inline std::filesystem::path write_tiny_llama_dir(const std::filesystem::path& dir,
                                                  const TinyLlamaShape& s) {
  namespace fs = std::filesystem;
  fs::create_directories(dir);
  const int H = s.hidden, I = s.intermediate, V = 704, NH = s.n_heads, NKV = s.n_kv_heads,
            HD = s.head_dim;
  std::ofstream(dir / "config.json")
      << "{\"architectures\": [\"" << s.arch << "\"], \"model_type\": \"llama\", \"hidden_size\": "
      << H << ", \"intermediate_size\": " << I << ", \"num_hidden_layers\": " << s.layers
      << ", \"num_attention_heads\": " << NH << ", \"num_key_value_heads\": " << NKV
      << ", \"vocab_size\": " << V
      << ", \"rms_norm_eps\": 1e-5, \"rope_theta\": 10000.0, \"tie_word_embeddings\": true, "
         "\"max_position_embeddings\": 512}";
  fs::copy_file(fs::path(AWQ_SOURCE_DIR) / "tests/fixtures/tokenizer/tiny_llama3/tokenizer.json",
                dir / "tokenizer.json", fs::copy_options::overwrite_existing);
  std::mt19937 g(s.seed);
  std::normal_distribution<float> d(0.0f, 0.1f);
  auto rnd = [&](size_t n) {
    std::vector<float> v(n);
    for (auto& x : v) x = d(g);
    return v;
  };
  SafeTensorsWriter w(dir.string());
  auto embed = rnd((size_t)V * H);
  for (int t = 0; t < V; ++t) embed[(size_t)t * H + s.salient_channel] *= s.salient_factor;
  EXPECT_TRUE(w.add_f32("model.embed_tokens.weight", DType::F32, {V, H}, embed.data()).ok());
  std::vector<float> ones(H, 1.0f);
  EXPECT_TRUE(w.add_f32("model.norm.weight", DType::F32, {H}, ones.data()).ok());
  for (int l = 0; l < s.layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    EXPECT_TRUE(w.add_f32(p + "input_layernorm.weight", DType::F32, {H}, ones.data()).ok());
    EXPECT_TRUE(w.add_f32(p + "post_attention_layernorm.weight", DType::F32, {H}, ones.data()).ok());
    auto lin = [&](const std::string& n, int out, int in) {
      auto v = rnd((size_t)out * in);
      EXPECT_TRUE(w.add_f32(p + n + ".weight", DType::F32, {out, in}, v.data()).ok());
    };
    lin("self_attn.q_proj", NH * HD, H);
    lin("self_attn.k_proj", NKV * HD, H);
    lin("self_attn.v_proj", NKV * HD, H);
    lin("self_attn.o_proj", H, NH * HD);
    lin("mlp.gate_proj", I, H);
    lin("mlp.up_proj", I, H);
    lin("mlp.down_proj", H, I);
  }
  EXPECT_TRUE(w.finish().ok());
  return dir;
}

}  // namespace awq::test
