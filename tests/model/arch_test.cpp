// Architectures as data: config.json parsing per family (both RoPE spellings, unsupported
// features named), and the fp32 forward of every tiny family fixture against Transformers
// (scripts/gen_arch_fixtures.py: fp32, eager attention).
#include <gtest/gtest.h>

#include <cmath>
#include <string>

#include <unistd.h>

#include <filesystem>

#include "core/half.h"
#include "io/safetensors.h"
#include "model/config.h"
#include "model/gguf_convert.h"
#include "model/forward.h"
#include "model/weights.h"

using namespace awq;

namespace {

std::string fixture_dir(const std::string& family) {
  return std::string(AWQ_SOURCE_DIR) + "/tests/fixtures/model/tiny_" + family;
}

// A minimal config of `arch` with extra fields spliced in.
std::string cfg_json(const std::string& arch, const std::string& extra) {
  return "{\"architectures\": [\"" + arch +
         "\"], \"hidden_size\": 64, \"intermediate_size\": 128, \"num_hidden_layers\": 4,"
         " \"num_attention_heads\": 4, \"num_key_value_heads\": 2, \"vocab_size\": 100" +
         (extra.empty() ? "" : ", " + extra) + "}";
}

std::string parse_error(const std::string& arch, const std::string& extra) {
  auto c = parse_model_config(cfg_json(arch, extra), "config.json");
  EXPECT_FALSE(c.ok()) << "expected an error for " << extra;
  return c.ok() ? "" : c.error().message;
}

}  // namespace

// ---- config.json ----

TEST(ArchConfig, RopeThetaFromBothSpellings) {
  // Transformers 4: top-level rope_theta / rope_scaling; Transformers 5: rope_parameters.
  auto t4 = parse_model_config(cfg_json("Qwen2ForCausalLM", "\"rope_theta\": 1000000.0"), "c");
  auto t5 = parse_model_config(
      cfg_json("Qwen2ForCausalLM",
               "\"rope_parameters\": {\"rope_theta\": 1000000.0, \"rope_type\": \"default\"}"),
      "c");
  ASSERT_TRUE(t4.ok()) << t4.error().message;
  ASSERT_TRUE(t5.ok()) << t5.error().message;
  EXPECT_EQ(t4->rope_theta, 1e6f);
  EXPECT_EQ(t5->rope_theta, 1e6f);
  auto none = parse_model_config(cfg_json("Qwen2ForCausalLM", ""), "c");
  ASSERT_TRUE(none.ok());
  EXPECT_EQ(none->rope_theta, 10000.0f);
}

TEST(ArchConfig, Llama3ScalingFromBothSpellings) {
  const std::string fields =
      "\"rope_type\": \"llama3\", \"factor\": 32.0, \"low_freq_factor\": 1.0, "
      "\"high_freq_factor\": 4.0, \"original_max_position_embeddings\": 8192";
  auto t4 = parse_model_config(
      cfg_json("LlamaForCausalLM", "\"rope_theta\": 500000.0, \"rope_scaling\": {" + fields + "}"),
      "c");
  auto t5 = parse_model_config(
      cfg_json("LlamaForCausalLM", "\"rope_parameters\": {\"rope_theta\": 500000.0, " + fields + "}"),
      "c");
  ASSERT_TRUE(t4.ok()) << t4.error().message;
  ASSERT_TRUE(t5.ok()) << t5.error().message;
  for (const ModelConfig* c : {&*t4, &*t5}) {
    EXPECT_EQ(c->rope_theta, 500000.0f);
    EXPECT_EQ(c->rope_scaling.kind, RopeScaling::Kind::Llama3);
    EXPECT_EQ(c->rope_scaling.factor, 32.0f);
    EXPECT_EQ(c->rope_scaling.original_max_position, 8192);
  }
  // The tables differ from unscaled RoPE at long wavelengths (the scaling is applied).
  ModelConfig plain = *t4;
  plain.rope_scaling = RopeScaling{};
  plain.head_dim = 16;
  ModelConfig scaled = *t4;
  scaled.head_dim = 16;
  Rope a, b;
  a.build(plain, 4000);
  b.build(scaled, 4000);
  EXPECT_NE(a.cos.back(), b.cos.back());
}

TEST(ArchConfig, UnsupportedFeaturesNameTheField) {
  std::string e = parse_error("LlamaForCausalLM", "\"hidden_act\": \"gelu_new\"");
  EXPECT_NE(e.find("\"hidden_act\""), std::string::npos) << e;
  EXPECT_NE(e.find("gelu_new"), std::string::npos) << e;
  e = parse_error("LlamaForCausalLM", "\"rope_scaling\": {\"rope_type\": \"longrope\", \"factor\": 4.0}");
  EXPECT_NE(e.find("rope_scaling.rope_type \"longrope\""), std::string::npos) << e;
  e = parse_error("Qwen2ForCausalLM", "\"rope_parameters\": {\"rope_type\": \"dynamic\"}");
  EXPECT_NE(e.find("rope_parameters.rope_type \"dynamic\""), std::string::npos) << e;
  e = parse_error("LlamaForCausalLM", "\"sliding_window\": 64");
  EXPECT_NE(e.find("\"sliding_window\""), std::string::npos) << e;
  e = parse_error("Qwen3ForCausalLM",
                  "\"layer_types\": [\"full_attention\", \"chunked_attention\", "
                  "\"full_attention\", \"full_attention\"]");
  EXPECT_NE(e.find("layer_types[1]"), std::string::npos) << e;
  EXPECT_NE(e.find("chunked_attention"), std::string::npos) << e;
  e = parse_error("Gemma3ForCausalLM", "\"use_bidirectional_attention\": true");
  EXPECT_NE(e.find("use_bidirectional_attention"), std::string::npos) << e;
  e = parse_error("GPT2LMHeadModel", "");
  EXPECT_NE(e.find("unsupported architecture \"GPT2LMHeadModel\""), std::string::npos) << e;
  EXPECT_NE(e.find("Gemma3ForCausalLM"), std::string::npos) << e;  // the list of supported ones
}

TEST(ArchConfig, SlidingWindowLayers) {
  auto m = parse_model_config(cfg_json("MistralForCausalLM", "\"sliding_window\": 64"), "c");
  ASSERT_TRUE(m.ok()) << m.error().message;
  EXPECT_EQ(m->layer_window, (std::vector<int>{64, 64, 64, 64}));
  auto mn = parse_model_config(cfg_json("MistralForCausalLM", "\"sliding_window\": null"), "c");
  ASSERT_TRUE(mn.ok());
  EXPECT_EQ(mn->layer_window, (std::vector<int>{0, 0, 0, 0}));
  // Qwen 2: use_sliding_window applies from max_window_layers on.
  auto q = parse_model_config(
      cfg_json("Qwen2ForCausalLM",
               "\"use_sliding_window\": true, \"sliding_window\": 32, \"max_window_layers\": 2"),
      "c");
  ASSERT_TRUE(q.ok()) << q.error().message;
  EXPECT_EQ(q->layer_window, (std::vector<int>{0, 0, 32, 32}));
  auto q0 = parse_model_config(
      cfg_json("Qwen2ForCausalLM", "\"use_sliding_window\": false, \"sliding_window\": 32"), "c");
  ASSERT_TRUE(q0.ok());
  EXPECT_EQ(q0->layer_window, (std::vector<int>{0, 0, 0, 0}));
  // Gemma 3 without layer_types: every 6th layer global (here pattern 2).
  auto g = parse_model_config(
      cfg_json("Gemma3ForCausalLM", "\"sliding_window\": 16, \"sliding_window_pattern\": 2"), "c");
  ASSERT_TRUE(g.ok()) << g.error().message;
  EXPECT_EQ(g->layer_window, (std::vector<int>{16, 0, 16, 0}));
  EXPECT_TRUE(g->tie_embeddings);
  EXPECT_EQ(g->act, Activation::GeluTanh);
  EXPECT_FLOAT_EQ(g->embed_scale, 8.0f);
  EXPECT_EQ(g->rope_local_theta, 10000.0f);
  EXPECT_FLOAT_EQ(g->attn_scale, 1.0f / 16.0f);  // query_pre_attn_scalar default 256
}

TEST(ArchConfig, GemmaRopePerLayerTypeBothSpellings) {
  auto t4 = parse_model_config(
      cfg_json("Gemma3ForCausalLM",
               "\"rope_theta\": 1000000.0, \"rope_local_base_freq\": 10000.0, "
               "\"rope_scaling\": {\"rope_type\": \"linear\", \"factor\": 8.0}"),
      "c");
  auto t5 = parse_model_config(
      cfg_json("Gemma3ForCausalLM",
               "\"rope_parameters\": {\"full_attention\": {\"rope_type\": \"linear\", \"factor\": "
               "8.0, \"rope_theta\": 1000000.0}, \"sliding_attention\": {\"rope_type\": "
               "\"default\", \"rope_theta\": 10000.0}}"),
      "c");
  ASSERT_TRUE(t4.ok()) << t4.error().message;
  ASSERT_TRUE(t5.ok()) << t5.error().message;
  for (const ModelConfig* c : {&*t4, &*t5}) {
    EXPECT_EQ(c->rope_theta, 1e6f);
    EXPECT_EQ(c->rope_local_theta, 1e4f);
    EXPECT_EQ(c->rope_scaling.kind, RopeScaling::Kind::Linear);
    EXPECT_EQ(c->rope_scaling.factor, 8.0f);
  }
  // a per-layer-type rope_parameters on a family without layer types is refused
  std::string e = parse_error("LlamaForCausalLM",
                              "\"rope_parameters\": {\"full_attention\": {\"rope_theta\": 1.0}}");
  EXPECT_NE(e.find("rope_parameters"), std::string::npos) << e;
}

TEST(ArchConfig, Phi3PartialRotaryWindowAndRefusals) {
  // partial_rotary_factor at top level (Transformers 4) or in rope_parameters (5)
  auto t4 = parse_model_config(
      cfg_json("Phi3ForCausalLM", "\"partial_rotary_factor\": 0.75, \"sliding_window\": 32"), "c");
  auto t5 = parse_model_config(
      cfg_json("Phi3ForCausalLM", "\"rope_parameters\": {\"rope_type\": \"default\", "
                                  "\"rope_theta\": 10000.0, \"partial_rotary_factor\": 0.75}"),
      "c");
  ASSERT_TRUE(t4.ok()) << t4.error().message;
  ASSERT_TRUE(t5.ok()) << t5.error().message;
  EXPECT_EQ(t4->rotary_dim, 12);  // head_dim 16 * 0.75
  EXPECT_EQ(t5->rotary_dim, 12);
  EXPECT_EQ(t4->layer_window, (std::vector<int>{32, 32, 32, 32}));
  EXPECT_EQ(t5->layer_window, (std::vector<int>{0, 0, 0, 0}));
  auto full = parse_model_config(cfg_json("Phi3ForCausalLM", "\"partial_rotary_factor\": 1.0"), "c");
  ASSERT_TRUE(full.ok());
  EXPECT_EQ(full->rotary_dim, 0);
  // fused modules: the parts' prefix is the fused module's
  const Architecture& a = phi3_architecture();
  EXPECT_EQ(a.linear_prefix(2, "k_proj"), "model.layers.2.self_attn.qkv_proj");
  EXPECT_EQ(a.linear_prefix(0, "up_proj"), "model.layers.0.mlp.gate_up_proj");
  EXPECT_EQ(a.linear_prefix(0, "o_proj"), "model.layers.0.self_attn.o_proj");
  // longrope / su (Phi-3-*-128k) are not implemented: the error names field and value
  std::string e = parse_error(
      "Phi3ForCausalLM", "\"rope_scaling\": {\"type\": \"longrope\", \"short_factor\": [1.0]}");
  EXPECT_NE(e.find("rope_scaling.rope_type \"longrope\""), std::string::npos) << e;
  e = parse_error("Phi3ForCausalLM", "\"rope_scaling\": {\"type\": \"su\"}");
  EXPECT_NE(e.find("\"su\""), std::string::npos) << e;
  e = parse_error("Phi3ForCausalLM",
                  "\"rope_parameters\": {\"rope_type\": \"longrope\", \"rope_theta\": 1.0}");
  EXPECT_NE(e.find("rope_parameters.rope_type \"longrope\""), std::string::npos) << e;
  e = parse_error("Phi3ForCausalLM", "\"partial_rotary_factor\": 0.2");  // 3 dims: odd
  EXPECT_NE(e.find("\"partial_rotary_factor\""), std::string::npos) << e;
}

TEST(ArchConfig, Gemma2Defaults) {
  auto g = parse_model_config(cfg_json("Gemma2ForCausalLM", ""), "c");
  ASSERT_TRUE(g.ok()) << g.error().message;
  EXPECT_EQ(g->layer_window, (std::vector<int>{4096, 0, 4096, 0}));  // even layers slide
  EXPECT_EQ(g->attn_softcap, 50.0f);
  EXPECT_EQ(g->final_softcap, 30.0f);
  EXPECT_TRUE(g->tie_embeddings);
  EXPECT_EQ(g->act, Activation::GeluTanh);
  EXPECT_FLOAT_EQ(g->attn_scale, 1.0f / 16.0f);
  EXPECT_EQ(g->rope_local_theta, 0.0f);  // one RoPE base
  auto off = parse_model_config(
      cfg_json("Gemma2ForCausalLM",
               "\"attn_logit_softcapping\": null, \"final_logit_softcapping\": null"), "c");
  ASSERT_TRUE(off.ok());
  EXPECT_EQ(off->attn_softcap, 0.0f);
  EXPECT_EQ(off->final_softcap, 0.0f);
  std::string e = parse_error("Gemma2ForCausalLM", "\"final_logit_softcapping\": -1");
  EXPECT_NE(e.find("final_logit_softcapping"), std::string::npos) << e;
  EXPECT_FALSE(gemma2_architecture().has_norm(NormSlot::Q));
}

TEST(ArchConfig, MoeFieldsAndRefusals) {
  auto mx = parse_model_config(
      cfg_json("MixtralForCausalLM", "\"num_local_experts\": 8, \"num_experts_per_tok\": 2"), "c");
  ASSERT_TRUE(mx.ok()) << mx.error().message;
  EXPECT_EQ(mx->n_experts, 8);
  EXPECT_EQ(mx->top_k, 2);
  EXPECT_EQ(mx->moe_intermediate, 128);  // intermediate_size
  EXPECT_TRUE(mx->norm_topk_prob);
  const std::string q3 = "\"num_experts\": 16, \"num_experts_per_tok\": 4, "
                         "\"moe_intermediate_size\": 32";
  auto qm = parse_model_config(cfg_json("Qwen3MoeForCausalLM", q3), "c");
  ASSERT_TRUE(qm.ok()) << qm.error().message;
  EXPECT_EQ(qm->n_experts, 16);
  EXPECT_EQ(qm->moe_intermediate, 32);
  EXPECT_FALSE(qm->norm_topk_prob);  // the config class default
  // Transformers 5 saves num_experts as num_local_experts
  auto q5 = parse_model_config(
      cfg_json("Qwen3MoeForCausalLM", "\"num_local_experts\": 16, \"num_experts_per_tok\": 4, "
                                      "\"moe_intermediate_size\": 32, \"norm_topk_prob\": true"),
      "c");
  ASSERT_TRUE(q5.ok()) << q5.error().message;
  EXPECT_EQ(q5->n_experts, 16);
  EXPECT_TRUE(q5->norm_topk_prob);
  std::string e = parse_error("Qwen3MoeForCausalLM", q3 + ", \"mlp_only_layers\": [1]");
  EXPECT_NE(e.find("\"mlp_only_layers\" = [1]"), std::string::npos) << e;
  e = parse_error("Qwen3MoeForCausalLM", q3 + ", \"decoder_sparse_step\": 2");
  EXPECT_NE(e.find("\"decoder_sparse_step\" = 2"), std::string::npos) << e;
  e = parse_error("MixtralForCausalLM", "\"num_local_experts\": 4, \"num_experts_per_tok\": 5");
  EXPECT_NE(e.find("num_experts_per_tok"), std::string::npos) << e;
  EXPECT_EQ(mixtral_architecture().expert_prefix(2, 5, "gate_proj"),
            "model.layers.2.block_sparse_moe.experts.5.w1");
  EXPECT_EQ(qwen3_moe_architecture().expert_prefix(0, 1, "down_proj"),
            "model.layers.0.mlp.experts.1.down_proj");
  EXPECT_EQ(qwen3_moe_architecture().router_prefix(3), "model.layers.3.mlp.gate");
  const std::string q2 = "\"num_experts\": 8, \"num_experts_per_tok\": 2, "
                         "\"moe_intermediate_size\": 32";
  auto q2m = parse_model_config(
      cfg_json("Qwen2MoeForCausalLM", q2 + ", \"shared_expert_intermediate_size\": 64"), "c");
  ASSERT_TRUE(q2m.ok()) << q2m.error().message;
  EXPECT_EQ(q2m->shared_intermediate, 64);
  EXPECT_FALSE(q2m->norm_topk_prob);
  e = parse_error("Qwen2MoeForCausalLM", q2);
  EXPECT_NE(e.find("shared_expert_intermediate_size"), std::string::npos) << e;
  e = parse_error("Qwen2MoeForCausalLM",
                  q2 + ", \"shared_expert_intermediate_size\": 64, \"decoder_sparse_step\": 2");
  EXPECT_NE(e.find("\"decoder_sparse_step\" = 2"), std::string::npos) << e;
  EXPECT_EQ(qwen2_moe_architecture().shared_prefix(2, "down_proj"),
            "model.layers.2.mlp.shared_expert.down_proj");
  EXPECT_EQ(qwen2_moe_architecture().shared_gate_prefix(2), "model.layers.2.mlp.shared_expert_gate");
}

TEST(ArchConfig, GgufFileGivenForADirectory) {
  auto c = load_model_config("/tmp/model.Q4_K_M.gguf");
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.error().message.find("is a GGUF file"), std::string::npos) << c.error().message;
  EXPECT_NE(c.error().message.find("awq convert"), std::string::npos) << c.error().message;
}

TEST(ArchConfig, RegistryDescriptionsAreConsistent) {
  for (const Architecture& a : supported_architectures()) {
    SCOPED_TRACE(a.name);
    EXPECT_TRUE(a.parse_config != nullptr);
    EXPECT_TRUE(a.has_norm(NormSlot::Attn));
    EXPECT_TRUE(a.has_norm(NormSlot::Mlp));
    for (const ScaleGroup& g : a.scale_groups) {
      EXPECT_EQ(g.experts, a.moe && g.prev_kind != ScaleGroup::Prev::AttnNorm &&
                               g.prev_linear != "v_proj");
      if (g.experts) continue;  // expert linears: gate_proj/up_proj/down_proj of every expert
      for (const auto& l : g.linears) EXPECT_NE(a.find_linear(l), nullptr) << l;
      if (g.prev_kind == ScaleGroup::Prev::Linear) {
        EXPECT_NE(a.find_linear(g.prev_linear), nullptr) << g.prev_linear;
      }
    }
    auto f = find_architecture(a.name);
    ASSERT_TRUE(f.ok());
    EXPECT_EQ(*f, &a);
  }
  EXPECT_EQ(llama_architecture().linear_prefix(3, "q_proj"), "model.layers.3.self_attn.q_proj");
  EXPECT_EQ(llama_architecture().linear_prefix(0, "down_proj"), "model.layers.0.mlp.down_proj");
}

// ---- tiny family fixtures vs Transformers ----

class FamilyForward : public ::testing::TestWithParam<std::string> {};

// Our fp32 forward vs Transformers' fp32 eager forward. Tolerance: both sum the same fp32
// products in different orders (about sqrt(K) * 2^-24 relative per dot product, K <= 128), and
// the difference passes through at most 3 blocks of 7 matmuls, the softmax and the head; 2e-5
// of the row's logit scale bounds that with margin while an implementation slip (a wrong
// window, norm or rope base) moves logits by far more (see FamilyForward.WindowMatters).
double max_rel_err(const Model& m, const SafeTensors& fx, bool* argmax_ok) {
  double worst = 0;
  *argmax_ok = true;
  for (int i = 0; fx.find("tokens_" + std::to_string(i)); ++i) {
    const TensorView* tt = fx.find("tokens_" + std::to_string(i));
    const int32_t* tp = reinterpret_cast<const int32_t*>(tt->data);
    std::vector<int32_t> toks(tp, tp + tt->numel());
    const int T = (int)toks.size(), V = m.cfg.vocab;
    auto ref = fx.to_f32("logits_" + std::to_string(i), {T, V});
    EXPECT_TRUE(ref.ok());
    std::vector<float> hidden((size_t)T * m.cfg.hidden), logits((size_t)T * V);
    forward_hidden(m, toks.data(), 1, T, hidden.data());
    lm_head_forward(m, hidden.data(), T, logits.data());
    for (int t = 0; t < T; ++t) {
      const float* a = logits.data() + (size_t)t * V;
      const float* b = ref->data() + (size_t)t * V;
      double scale = 1.0, err = 0;
      int am = 0, bm = 0;
      for (int j = 0; j < V; ++j) {
        scale = std::max(scale, (double)std::fabs(b[j]));
        err = std::max(err, (double)std::fabs(a[j] - b[j]));
        if (a[j] > a[am]) am = j;
        if (b[j] > b[bm]) bm = j;
      }
      if (am != bm) *argmax_ok = false;
      worst = std::max(worst, err / scale);
    }
  }
  return worst;
}

TEST_P(FamilyForward, LogitsMatchTransformers) {
  auto m = load_model(fixture_dir(GetParam()));
  ASSERT_TRUE(m.ok()) << m.error().message;
  auto fx = SafeTensors::open(fixture_dir(GetParam()) + "/logits.safetensors");
  ASSERT_TRUE(fx.ok()) << fx.error().message;
  bool argmax_ok = false;
  const double err = max_rel_err(*m, *fx, &argmax_ok);
  EXPECT_TRUE(argmax_ok) << "argmax differs from Transformers at some position";
  EXPECT_LT(err, 2e-5) << GetParam();
  std::printf("%s: max |logit - transformers| / scale = %.3g\n", GetParam().c_str(), err);
}

INSTANTIATE_TEST_SUITE_P(Tiny, FamilyForward, ::testing::Values("qwen3", "gemma3", "mistral", "phi3", "gemma2", "mixtral",
                                                   "qwen3_moe", "qwen3_yarn", "llama3_rope", "qwen2_moe"));

// The comparison can fail: the same models with a recipe detail removed are far off.
TEST(FamilyForwardSensitivity, WindowNormsAndRopeMatter) {
  auto fx_m = SafeTensors::open(fixture_dir("mistral") + "/logits.safetensors");
  auto fx_g = SafeTensors::open(fixture_dir("gemma3") + "/logits.safetensors");
  auto fx_q = SafeTensors::open(fixture_dir("qwen3") + "/logits.safetensors");
  ASSERT_TRUE(fx_m.ok() && fx_g.ok() && fx_q.ok());
  bool am;
  {
    auto m = load_model(fixture_dir("mistral"));
    ASSERT_TRUE(m.ok());
    m->cfg.layer_window.assign(m->cfg.n_layers, 0);  // full attention: the old defect
    EXPECT_GT(max_rel_err(*m, *fx_m, &am), 1e-3);
  }
  {
    auto m = load_model(fixture_dir("gemma3"));
    ASSERT_TRUE(m.ok());
    m->cfg.rope_local_theta = 0;  // one RoPE base for all layers
    EXPECT_GT(max_rel_err(*m, *fx_g, &am), 1e-3);
  }
  {
    auto m = load_model(fixture_dir("qwen3"));
    ASSERT_TRUE(m.ok());
    for (auto& b : m->blocks) b.q_norm.clear();  // no q norm
    EXPECT_GT(max_rel_err(*m, *fx_q, &am), 1e-3);
  }
  auto fx_p = SafeTensors::open(fixture_dir("phi3") + "/logits.safetensors");
  auto fx_2 = SafeTensors::open(fixture_dir("gemma2") + "/logits.safetensors");
  ASSERT_TRUE(fx_p.ok() && fx_2.ok());
  {
    auto m = load_model(fixture_dir("phi3"));
    ASSERT_TRUE(m.ok()) << m.error().message;
    ASSERT_EQ(m->cfg.rotary_dim, 12);
    m->cfg.rotary_dim = 0;  // RoPE over the whole head
    EXPECT_GT(max_rel_err(*m, *fx_p, &am), 1e-3);
  }
  {
    auto m = load_model(fixture_dir("phi3"));
    ASSERT_TRUE(m.ok());
    std::swap(m->blocks[0].q, m->blocks[0].k);  // split the fused rows wrongly (q <-> k)
    std::swap(m->blocks[0].q.out, m->blocks[0].k.out);
    EXPECT_GT(max_rel_err(*m, *fx_p, &am), 1e-3);
  }
  {  // MoE routing: renormalising the top-k weights (or not) matters
    auto fx = SafeTensors::open(fixture_dir("qwen3_moe") + "/logits.safetensors");
    ASSERT_TRUE(fx.ok());
    auto m = load_model(fixture_dir("qwen3_moe"));
    ASSERT_TRUE(m.ok()) << m.error().message;
    ASSERT_TRUE(m->cfg.norm_topk_prob);
    m->cfg.norm_topk_prob = false;
    EXPECT_GT(max_rel_err(*m, *fx, &am), 1e-3);
  }
  {  // Qwen 2-MoE: the shared expert and its sigmoid gate are part of the block
    auto fx = SafeTensors::open(fixture_dir("qwen2_moe") + "/logits.safetensors");
    ASSERT_TRUE(fx.ok());
    for (int which = 0; which < 2; ++which) {
      auto m = load_model(fixture_dir("qwen2_moe"));
      ASSERT_TRUE(m.ok()) << m.error().message;
      ASSERT_EQ(m->cfg.shared_intermediate, 64);
      for (auto& b : m->blocks) {
        if (which == 0) b.shared.down.out = 0;  // no shared expert
        else std::fill(b.shared_gate.weight.begin(), b.shared_gate.weight.end(), 0.0f);  // gate 0.5
      }
      EXPECT_GT(max_rel_err(*m, *fx, &am), 1e-3) << which;
    }
  }
  {  // and so does the number of experts per token
    auto fx = SafeTensors::open(fixture_dir("mixtral") + "/logits.safetensors");
    ASSERT_TRUE(fx.ok());
    auto m = load_model(fixture_dir("mixtral"));
    ASSERT_TRUE(m.ok()) << m.error().message;
    ASSERT_EQ(m->cfg.top_k, 2);
    m->cfg.top_k = 1;
    EXPECT_GT(max_rel_err(*m, *fx, &am), 1e-3);
  }
  {  // RoPE scaling: YaRN's frequencies and its attention factor, Llama 3's frequencies
    auto fy = SafeTensors::open(fixture_dir("qwen3_yarn") + "/logits.safetensors");
    auto fl = SafeTensors::open(fixture_dir("llama3_rope") + "/logits.safetensors");
    ASSERT_TRUE(fy.ok() && fl.ok());
    auto y = load_model(fixture_dir("qwen3_yarn"));
    ASSERT_TRUE(y.ok()) << y.error().message;
    ASSERT_EQ(y->cfg.rope_scaling.kind, RopeScaling::Kind::Yarn);
    EXPECT_FLOAT_EQ(y->cfg.rope_scaling.attention_factor, 0.1f * std::log(4.0f) + 1.0f);
    auto y1 = load_model(fixture_dir("qwen3_yarn"));
    ASSERT_TRUE(y1.ok());
    y1->cfg.rope_scaling.attention_factor = 1.0f;
    EXPECT_GT(max_rel_err(*y1, *fy, &am), 1e-3);
    y->cfg.rope_scaling = RopeScaling{};
    EXPECT_GT(max_rel_err(*y, *fy, &am), 1e-3);
    auto l = load_model(fixture_dir("llama3_rope"));
    ASSERT_TRUE(l.ok()) << l.error().message;
    ASSERT_EQ(l->cfg.rope_scaling.kind, RopeScaling::Kind::Llama3);
    l->cfg.rope_scaling = RopeScaling{};
    EXPECT_GT(max_rel_err(*l, *fl, &am), 1e-3);
  }
  for (int which = 0; which < 2; ++which) {
    auto m = load_model(fixture_dir("gemma2"));
    ASSERT_TRUE(m.ok()) << m.error().message;
    if (which == 0) m->cfg.attn_softcap = 0;   // no attention soft-cap
    else m->cfg.final_softcap = 0;             // no final soft-cap
    EXPECT_GT(max_rel_err(*m, *fx_2, &am), 1e-3) << which;
  }
}

// ---- GGUF input for every family: llama.cpp's converter output, read back ----

// tests/fixtures/model/gguf/tiny_<family>.gguf are the fixtures above as llama.cpp's own
// convert_hf_to_gguf.py writes them (scripts/gen_gguf_arch_fixtures.py, F16). `awq convert`
// must give back the HF fixture: every tensor bit-exact (Gemma's norms as the file holds them:
// llama.cpp adds 1 in fp16, so the value is fp16(1 + w) - 1), the same parsed config, and for
// the families whose weights come back exactly the same logits as Transformers. Mistral: llama.cpp
// writes it as "llama" without its sliding window, so it comes back as a Llama model (full
// attention, as llama.cpp runs that file); Gemma 3 likewise loses its layer pattern.
class GgufFamilyInput : public ::testing::TestWithParam<std::string> {};

TEST_P(GgufFamilyInput, ConvertGivesBackTheFixture) {
  namespace fs = std::filesystem;
  const std::string fam = GetParam();
  const std::string out = (fs::temp_directory_path() /
                           ("awq_gguf_family_" + fam + "_" + std::to_string(getpid()))).string();
  fs::remove_all(out);
  ConvertOptions o;
  o.progress = false;
  Status s = convert_gguf_to_hf(
      std::string(AWQ_SOURCE_DIR) + "/tests/fixtures/model/gguf/tiny_" + fam + ".gguf", out, o);
  ASSERT_TRUE(s.ok()) << s.message();
  struct Cleanup {
    std::string p;
    ~Cleanup() { fs::remove_all(p); }
  } cleanup{out};
  const bool gemma = fam == "gemma2" || fam == "gemma3";

  auto ref_st = SafeTensors::open(fixture_dir(fam));
  auto got_st = SafeTensors::open(out);
  ASSERT_TRUE(ref_st.ok() && got_st.ok());
  EXPECT_EQ(ref_st->names().size(), got_st->names().size());
  for (const std::string& n : ref_st->names()) {
    SCOPED_TRACE(n);
    const TensorView* r = ref_st->find(n);
    ASSERT_NE(got_st->find(n), nullptr) << "missing after convert";
    auto a = ref_st->to_f32(n, r->shape);
    auto b = got_st->to_f32(n, r->shape);
    ASSERT_TRUE(a.ok() && b.ok()) << "shape differs";
    const bool norm_plus_one = gemma && n.ends_with("norm.weight");
    size_t bad = 0;
    for (size_t i = 0; i < a->size(); ++i) {
      const float want = norm_plus_one ? round_fp16(1.0f + (*a)[i]) - 1.0f : (*a)[i];
      bad += (*b)[i] != want;
    }
    EXPECT_EQ(bad, 0u);
  }

  auto ref = load_model_config(fixture_dir(fam));
  auto got = load_model_config(out);
  ASSERT_TRUE(ref.ok() && got.ok()) << (got.ok() ? "" : got.error().message);
  if (fam == "mistral") {
    EXPECT_EQ(got->arch->name, "LlamaForCausalLM");
    EXPECT_EQ(got->layer_window, std::vector<int>(size_t(ref->n_layers), 0));
    ref->arch = got->arch;
    ref->layer_window = got->layer_window;
  }
  if (fam == "gemma3") {
    // llama.cpp's Gemma 3 converter writes the window but not the fixture's layer_types
    // (sliding, full, sliding); llama.cpp then runs every 6th layer global (here: none).
    EXPECT_EQ(got->layer_window, (std::vector<int>{8, 8, 8}));
    ref->layer_window = got->layer_window;
  }
  EXPECT_EQ(got->arch->name, ref->arch->name);
  EXPECT_EQ(got->hidden, ref->hidden);
  EXPECT_EQ(got->intermediate, ref->intermediate);
  EXPECT_EQ(got->n_layers, ref->n_layers);
  EXPECT_EQ(got->n_heads, ref->n_heads);
  EXPECT_EQ(got->n_kv_heads, ref->n_kv_heads);
  EXPECT_EQ(got->head_dim, ref->head_dim);
  EXPECT_EQ(got->vocab, ref->vocab);
  EXPECT_EQ(got->rms_eps, ref->rms_eps);
  EXPECT_EQ(got->rope_theta, ref->rope_theta);
  EXPECT_EQ(got->rope_scaling.kind, ref->rope_scaling.kind);
  EXPECT_EQ(got->rope_scaling.factor, ref->rope_scaling.factor);
  EXPECT_EQ(got->rope_scaling.original_max_position, ref->rope_scaling.original_max_position);
  EXPECT_EQ(got->rope_scaling.low_freq_factor, ref->rope_scaling.low_freq_factor);
  EXPECT_EQ(got->rope_scaling.high_freq_factor, ref->rope_scaling.high_freq_factor);
  EXPECT_EQ(got->rope_scaling.attention_factor, ref->rope_scaling.attention_factor);
  EXPECT_EQ(got->tie_embeddings, ref->tie_embeddings);
  EXPECT_EQ(got->act, ref->act);
  EXPECT_EQ(got->layer_window, ref->layer_window);
  EXPECT_EQ(got->rope_local_theta, ref->rope_local_theta);
  EXPECT_EQ(got->rotary_dim, ref->rotary_dim);
  EXPECT_EQ(got->attn_scale, ref->attn_scale);
  EXPECT_EQ(got->embed_scale, ref->embed_scale);
  EXPECT_EQ(got->attn_softcap, ref->attn_softcap);
  EXPECT_EQ(got->final_softcap, ref->final_softcap);
  EXPECT_EQ(got->n_experts, ref->n_experts);
  EXPECT_EQ(got->top_k, ref->top_k);
  EXPECT_EQ(got->moe_intermediate, ref->moe_intermediate);
  EXPECT_EQ(got->norm_topk_prob, ref->norm_topk_prob);
  EXPECT_EQ(got->shared_intermediate, ref->shared_intermediate);

  if (fam == "mistral" || gemma) return;  // see above: not the fixture's model / weights
  auto m = load_model(out);
  ASSERT_TRUE(m.ok()) << m.error().message;
  auto fx = SafeTensors::open(fixture_dir(fam) + "/logits.safetensors");
  ASSERT_TRUE(fx.ok());
  bool argmax_ok = false;
  const double err = max_rel_err(*m, *fx, &argmax_ok);
  EXPECT_TRUE(argmax_ok);
  EXPECT_LT(err, 2e-5);
}

INSTANTIATE_TEST_SUITE_P(Tiny, GgufFamilyInput,
                         ::testing::Values("qwen3", "gemma3", "gemma2", "mistral", "phi3",
                                           "mixtral", "qwen3_moe", "qwen2_moe", "qwen3_yarn",
                                           "llama3_rope"));

TEST(GemmaNorm, StoredFormRoundTrips) {
  auto m = load_model(fixture_dir("gemma3"));
  ASSERT_TRUE(m.ok()) << m.error().message;
  auto st = SafeTensors::open(fixture_dir("gemma3"));
  ASSERT_TRUE(st.ok());
  auto w = st->to_f32("model.layers.0.input_layernorm.weight", {64});
  ASSERT_TRUE(w.ok());
  // held in memory as 1 + w, stored back as w
  EXPECT_EQ(m->blocks[0].attn_norm[5], 1.0f + (*w)[5]);
  EXPECT_NEAR(stored_norm(m->cfg, m->blocks[0].attn_norm)[5], (*w)[5], 1e-7);
  EXPECT_EQ(m->blocks[0].q_norm.size(), 32u);
  EXPECT_EQ(m->blocks[0].post_mlp_norm.size(), 64u);
}
