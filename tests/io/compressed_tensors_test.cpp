// compressed-tensors pack-quantized: bit packing against hand-computed words, round trips for
// every width, and the quantization_config reader (accepts what we write, refuses naming the
// field what we do not implement).
#include "io/compressed_tensors.h"

#include <gtest/gtest.h>

#include <functional>
#include <random>
#include <string>
#include <vector>

namespace awq {
namespace {

using json = nlohmann::json;

TEST(CtPack, FourBitCodesFillNibblesFromTheLowEnd) {
  const std::vector<uint8_t> codes = {0, 1, 2, 3, 4, 5, 6, 7, 15, 14, 13, 12, 11, 10, 9, 8};
  const auto w = ct_pack_rows(codes.data(), 1, 16, 4);
  ASSERT_EQ(w.size(), 2u);
  EXPECT_EQ(uint32_t(w[0]), 0x76543210u);
  EXPECT_EQ(uint32_t(w[1]), 0x89ABCDEFu);  // top nibble >= 8: a negative int32, as torch stores it
}

TEST(CtPack, EightBitCodesAreLittleEndianBytes) {
  const std::vector<uint8_t> codes = {1, 2, 3, 4, 255, 0};
  const auto w = ct_pack_rows(codes.data(), 1, 6, 8);
  ASSERT_EQ(w.size(), 2u);
  EXPECT_EQ(uint32_t(w[0]), 0x04030201u);
  EXPECT_EQ(uint32_t(w[1]), 0x000000FFu);
}

TEST(CtPack, ThreeBitValuesStraddleWords) {
  // 11 values of 0b111 = 33 one bits: a full word, then bit 0 of the next.
  const std::vector<uint8_t> ones(11, 7);
  const auto w = ct_pack_rows(ones.data(), 1, 11, 3);
  ASSERT_EQ(w.size(), 2u);
  EXPECT_EQ(uint32_t(w[0]), 0xFFFFFFFFu);
  EXPECT_EQ(uint32_t(w[1]), 0x1u);
  // Only value 10 (bits 30..32) set to 0b101: bit 30 of word 0 and bit 0 of word 1.
  std::vector<uint8_t> one(11, 0);
  one[10] = 5;
  const auto w2 = ct_pack_rows(one.data(), 1, 11, 3);
  EXPECT_EQ(uint32_t(w2[0]), 1u << 30);
  EXPECT_EQ(uint32_t(w2[1]), 0x1u);
}

TEST(CtPack, RoundTripEveryWidthAndOddShapes) {
  std::mt19937 rng(7);
  for (int b = 2; b <= 8; ++b) {
    for (auto [rows, cols] : {std::pair<int, int>{3, 5}, {8, 64}, {5, 37}, {1, 96}}) {
      SCOPED_TRACE(std::to_string(b) + " bits " + std::to_string(rows) + "x" + std::to_string(cols));
      std::vector<uint8_t> c(size_t(rows) * cols);
      for (auto& v : c) v = uint8_t(rng() % (1u << b));
      const auto wr = ct_pack_rows(c.data(), rows, cols, b);
      EXPECT_EQ(wr.size(), size_t(rows * ct_packed_words(cols, b)));
      EXPECT_EQ(ct_unpack_rows(wr.data(), rows, cols, b), c);
      const auto wc = ct_pack_cols(c.data(), rows, cols, b);
      EXPECT_EQ(wc.size(), size_t(ct_packed_words(rows, b) * cols));
      EXPECT_EQ(ct_unpack_cols(wc.data(), rows, cols, b), c);
      // Packing along rows = packing the transpose along columns.
      std::vector<uint8_t> t(c.size());
      for (int r = 0; r < rows; ++r)
        for (int k = 0; k < cols; ++k) t[size_t(k) * rows + r] = c[size_t(r) * cols + k];
      const auto wt = ct_pack_rows(t.data(), cols, rows, b);
      const int64_t nw = ct_packed_words(rows, b);
      for (int k = 0; k < cols; ++k)
        for (int64_t w = 0; w < nw; ++w)
          ASSERT_EQ(wc[size_t(w * cols + k)], wt[size_t(k * nw + w)]);
    }
  }
}

TEST(CtConfig, WhatWeWriteIsReadBack) {
  for (CtWeightScheme s : {CtWeightScheme{4, 128, false}, CtWeightScheme{4, 64, true},
                           CtWeightScheme{8, -1, false}, CtWeightScheme{3, 32, true}}) {
    const json q = json::parse(ct_quantization_config(s, {"lm_head"}).dump());
    EXPECT_EQ(q["quant_method"], "compressed-tensors");
    EXPECT_EQ(q["format"], "pack-quantized");
    EXPECT_EQ(q["ignore"], json::array({"lm_head"}));
    EXPECT_EQ(q["config_groups"]["group_0"]["weights"]["strategy"],
              s.group_size > 0 ? "group" : "channel");
    auto r = parse_ct_quantization_config(q, "config.json");
    ASSERT_TRUE(r.ok()) << r.error().message;
    EXPECT_EQ(r->num_bits, s.num_bits);
    EXPECT_EQ(r->group_size, s.group_size);
    EXPECT_EQ(r->symmetric, s.symmetric);
  }
}

TEST(CtConfig, StrategyInferredFromGroupSizeAsTheLibraryDoes) {
  json q = json::parse(ct_quantization_config({4, 128, false}, {}).dump());
  q["config_groups"]["group_0"]["weights"].erase("strategy");
  auto r = parse_ct_quantization_config(q, "c.json");
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->group_size, 128);
  q["config_groups"]["group_0"]["weights"]["group_size"] = nullptr;  // -> "tensor": refused
  r = parse_ct_quantization_config(q, "c.json");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("weights.strategy"), std::string::npos) << r.error().message;
}

TEST(CtConfig, UnsupportedConfigsAreRefusedNamingTheField) {
  const json base = json::parse(ct_quantization_config({4, 128, false}, {"lm_head"}).dump());
  struct Case {
    const char* field;
    std::function<void(json&)> edit;
  };
  const std::vector<Case> cases = {
      {"quantization_config.format", [](json& q) { q["format"] = "int-quantized"; }},
      {"quantization_config.format", [](json& q) { q["format"] = "sparse-24-bitmask"; }},
      {"quantization_config.quantization_status",
       [](json& q) { q["quantization_status"] = "frozen"; }},
      {"quantization_config.sparsity_config",
       [](json& q) { q["sparsity_config"] = {{"format", "sparse-24-bitmask"}}; }},
      {"quantization_config.transform_config",
       [](json& q) { q["transform_config"] = {{"config_groups", {{"u", 1}}}}; }},
      {"quantization_config.kv_cache_scheme",
       [](json& q) { q["kv_cache_scheme"] = {{"num_bits", 8}}; }},
      {"quantization_config.config_groups",
       [](json& q) { q["config_groups"]["group_1"] = q["config_groups"]["group_0"]; }},
      {"config_groups.group_0.targets",
       [](json& q) { q["config_groups"]["group_0"]["targets"] = {"re:.*q_proj"}; }},
      {"config_groups.group_0.input_activations",
       [](json& q) {
         q["config_groups"]["group_0"]["input_activations"] = {{"num_bits", 8}, {"type", "int"}};
       }},
      {"config_groups.group_0.output_activations",
       [](json& q) { q["config_groups"]["group_0"]["output_activations"] = {{"num_bits", 8}}; }},
      {"group_0.weights.strategy",
       [](json& q) {
         q["config_groups"]["group_0"]["weights"]["strategy"] = "tensor";
         q["config_groups"]["group_0"]["weights"]["group_size"] = nullptr;
       }},
      {"group_0.weights.strategy",
       [](json& q) { q["config_groups"]["group_0"]["weights"]["strategy"] = "block"; }},
      {"group_0.weights.type",
       [](json& q) { q["config_groups"]["group_0"]["weights"]["type"] = "float"; }},
      {"group_0.weights.num_bits",
       [](json& q) { q["config_groups"]["group_0"]["weights"]["num_bits"] = 16; }},
      {"group_0.weights.dynamic",
       [](json& q) { q["config_groups"]["group_0"]["weights"]["dynamic"] = true; }},
      {"group_0.weights.actorder",
       [](json& q) { q["config_groups"]["group_0"]["weights"]["actorder"] = "group"; }},
      {"group_0.weights.block_structure",
       [](json& q) { q["config_groups"]["group_0"]["weights"]["block_structure"] = {128, 128}; }},
      {"group_0.weights.group_size",
       [](json& q) { q["config_groups"]["group_0"]["weights"]["group_size"] = 0; }},
  };
  for (const auto& c : cases) {
    json q = base;
    c.edit(q);
    SCOPED_TRACE(q.dump());
    auto r = parse_ct_quantization_config(q, "some/config.json");
    ASSERT_FALSE(r.ok()) << c.field;
    EXPECT_NE(r.error().message.find(c.field), std::string::npos) << r.error().message;
    EXPECT_NE(r.error().message.find("some/config.json"), std::string::npos);
  }
}

}  // namespace
}  // namespace awq
