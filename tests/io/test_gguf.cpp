// GGUF reader, dequantization and conversion, against files and values produced by the
// `gguf` Python package (scripts/gen_io_fixtures.py), plus deliberately broken files.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/half.h"
#include "io/gguf.h"
#include "io/gguf_dequant.h"
#include "io/safetensors.h"

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

std::string parse_error(const std::string& img) {
  auto r = GGUFFile::parse(reinterpret_cast<const uint8_t*>(img.data()), img.size(), "bad.gguf");
  EXPECT_FALSE(r.ok()) << "expected an error";
  return r.ok() ? "" : r.error().message;
}

// Little builder for hand-made GGUF images.
struct Img {
  std::string b;
  Img& u32(uint32_t v) { b.append(reinterpret_cast<char*>(&v), 4); return *this; }
  Img& u64(uint64_t v) { b.append(reinterpret_cast<char*>(&v), 8); return *this; }
  Img& u8(uint8_t v) { b.push_back(char(v)); return *this; }
  Img& str(const std::string& s) { u64(s.size()); b += s; return *this; }
  Img& head(uint32_t version, uint64_t nt, uint64_t nkv) {
    b += "GGUF";
    return u32(version).u64(nt).u64(nkv);
  }
};
}  // namespace

TEST(GGUF, MetadataOfEveryType) {
  auto g = GGUFFile::open(fixture("meta.gguf"));
  ASSERT_TRUE(g.ok()) << g.error().message;
  EXPECT_EQ(g->version(), 3u);
  EXPECT_EQ(g->alignment(), 64u);
  EXPECT_EQ(g->data_offset() % 64, 0u);
  EXPECT_EQ(*g->get_string("general.architecture"), "test");
  EXPECT_EQ(g->find("t.u8")->type, GGUFValueType::U8);
  EXPECT_EQ(*g->get_u32("t.u8"), 200u);
  EXPECT_EQ(g->find("t.i8")->type, GGUFValueType::I8);
  EXPECT_EQ(*g->get_i64("t.i8"), -100);
  EXPECT_EQ(*g->get_u32("t.u16"), 60000u);
  EXPECT_EQ(*g->get_i64("t.i16"), -30000);
  EXPECT_EQ(*g->get_u32("t.u32"), 4000000000u);
  EXPECT_EQ(*g->get_i64("t.i32"), -2000000000);
  EXPECT_EQ(*g->get_f32("t.f32"), 0.25f);
  EXPECT_EQ(*g->get_bool("t.bool"), true);
  EXPECT_EQ(*g->get_string("t.string"), "h\xc3\xa9llo w\xc3\xb6rld");
  EXPECT_EQ(*g->get_u64("t.u64"), (uint64_t(1) << 63) + 5);
  EXPECT_FALSE(g->get_i64("t.u64").ok());  // does not fit
  EXPECT_FALSE(g->get_u32("t.u64").ok());
  EXPECT_EQ(*g->get_i64("t.i64"), -(int64_t(1) << 62));
  EXPECT_EQ(g->find("t.f64")->type, GGUFValueType::F64);
  EXPECT_EQ(g->find("t.f64")->f, -1.0 / 3.0);
  EXPECT_EQ(*g->get_int_array("t.arr_i32"), (std::vector<int64_t>{1, -2, 3}));
  EXPECT_EQ(*g->get_string_array("t.arr_str"), (std::vector<std::string>{"a", "", "ccc"}));
  EXPECT_EQ(*g->get_f32_array("t.arr_f32"), (std::vector<float>{0.5f, -1.5f}));
  const GGUFValue* nested = g->get_array("t.arr_nested");
  ASSERT_NE(nested, nullptr);
  ASSERT_EQ(nested->elem_type, GGUFValueType::ARRAY);
  ASSERT_EQ(nested->arr.size(), 2u);
  ASSERT_EQ(nested->arr[0].arr.size(), 2u);
  ASSERT_EQ(nested->arr[1].arr.size(), 1u);
  EXPECT_EQ(nested->arr[1].arr[0].i + int64_t(nested->arr[1].arr[0].u), 3);
  // wrong-type and missing lookups name the key
  auto e = g->get_string("t.u8");
  ASSERT_FALSE(e.ok());
  EXPECT_NE(e.error().message.find("t.u8"), std::string::npos);
  EXPECT_NE(e.error().message.find("expected string"), std::string::npos);
  EXPECT_NE(g->get_u32("nope").error().message.find("missing"), std::string::npos);
  // tensors: ne innermost first
  const GGUFTensor* x = g->find_tensor("x");
  ASSERT_NE(x, nullptr);
  EXPECT_EQ(x->ne, (std::vector<uint64_t>{3, 2}));
  EXPECT_EQ(x->shape(), (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(x->offset % 64, 0u);
  EXPECT_EQ(*g->dequantize(*x), (std::vector<float>{0, 1, 2, 3, 4, 5}));
  EXPECT_EQ(*g->dequantize(*g->find_tensor("y")), (std::vector<float>{0, 1, 2, 3, 4}));
}

TEST(GGUF, Version2ReadsLikeVersion3) {
  std::string img = read_all(fixture("meta.gguf"));
  img[4] = 2;  // v2 and v3 little-endian layouts are identical
  auto g = GGUFFile::parse(reinterpret_cast<const uint8_t*>(img.data()), img.size(), "v2");
  ASSERT_TRUE(g.ok()) << g.error().message;
  EXPECT_EQ(g->version(), 2u);
  EXPECT_EQ(*g->get_u32("t.u32"), 4000000000u);
}

class Dequant : public ::testing::TestWithParam<std::string> {};

TEST_P(Dequant, MatchesGgufPy) {
  static auto g = GGUFFile::open(fixture("quant.gguf"));
  ASSERT_TRUE(g.ok()) << g.error().message;
  const std::string type = GetParam();
  const GGUFTensor* t = g->find_tensor(type);
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(ggml_type_name(t->type), type);
  EXPECT_EQ(t->shape(), (std::vector<int64_t>{2, 256}));
  const std::string ref_bytes = read_all(fixture("deq_" + type + ".f32"));
  ASSERT_EQ(ref_bytes.size(), 512u * 4);
  auto out = g->dequantize(*t);
  ASSERT_TRUE(out.ok()) << out.error().message;
  size_t mismatches = 0;
  for (size_t i = 0; i < 512; ++i) {
    uint32_t want;
    std::memcpy(&want, ref_bytes.data() + 4 * i, 4);
    if (f32_to_bits((*out)[i]) != want && ++mismatches < 5)
      ADD_FAILURE() << type << "[" << i << "]: got " << (*out)[i] << ", gguf-py "
                    << bits_to_f32(want);
  }
  EXPECT_EQ(mismatches, 0u) << type << " is not bit-exact";
}

INSTANTIATE_TEST_SUITE_P(AllTypes, Dequant,
                         ::testing::Values("F32", "F16", "BF16", "Q8_0", "Q4_0", "Q4_1", "Q5_0",
                                           "Q5_1", "Q4_K", "Q5_K", "Q6_K"));

TEST(GGUF, UnsupportedTypeNamesTensorAndType) {
  auto g = GGUFFile::open(fixture("quant.gguf"));
  ASSERT_TRUE(g.ok());
  const GGUFTensor* t = g->find_tensor("IQ4_NL");
  ASSERT_NE(t, nullptr);
  auto r = g->dequantize(*t);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("tensor \"IQ4_NL\""), std::string::npos) << r.error().message;
  EXPECT_NE(r.error().message.find("IQ4_NL cannot be dequantized"), std::string::npos);
}

TEST(GGUF, DequantRejectsWrongByteCount) {
  std::vector<uint8_t> buf(34);
  std::vector<float> out(32);
  Status s = dequantize_ggml(uint32_t(GGMLType::Q8_0), buf.data(), 33, out.data(), 32, "t");
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("needs 34 bytes, got 33"), std::string::npos) << s.message();
}

// ---- corrupt files ----

TEST(GGUFCorrupt, BadMagic) {
  Img i;
  i.b = "GGML";
  i.u32(3).u64(0).u64(0);
  const std::string m = parse_error(i.b);
  EXPECT_NE(m.find("bad magic \"GGML\""), std::string::npos) << m;
}

TEST(GGUFCorrupt, EmptyFile) {
  EXPECT_NE(parse_error("").find("truncated"), std::string::npos);
}

TEST(GGUFCorrupt, BadVersion) {
  for (uint32_t v : {1u, 4u, 0x03000000u}) {
    Img i;
    i.head(v, 0, 0);
    const std::string m = parse_error(i.b);
    EXPECT_NE(m.find("unsupported GGUF version " + std::to_string(v)), std::string::npos) << m;
  }
}

TEST(GGUFCorrupt, HugeCounts) {
  Img a;
  a.head(3, 0, uint64_t(1) << 60);
  EXPECT_NE(parse_error(a.b).find("metadata count"), std::string::npos);
  Img b;
  b.head(3, uint64_t(1) << 62, 0);
  EXPECT_NE(parse_error(b.b).find("tensor count"), std::string::npos);
}

TEST(GGUFCorrupt, StringLengthPastEof) {
  Img i;
  i.head(3, 0, 1).u64(1000);
  i.b += "abc";
  i.b.append(20, 'x');
  const std::string m = parse_error(i.b);
  EXPECT_NE(m.find("string length 1000"), std::string::npos) << m;
  EXPECT_NE(m.find("past the end"), std::string::npos) << m;
}

TEST(GGUFCorrupt, UnknownValueType) {
  Img i;
  i.head(3, 0, 1).str("k").u32(13).u32(0);
  const std::string m = parse_error(i.b);
  EXPECT_NE(m.find("key \"k\": unknown value type 13"), std::string::npos) << m;
}

TEST(GGUFCorrupt, HugeArrayCount) {
  Img i;
  i.head(3, 0, 1).str("arr").u32(9).u32(4).u64(uint64_t(1) << 40).u32(1);
  const std::string m = parse_error(i.b);
  EXPECT_NE(m.find("array count"), std::string::npos) << m;
}

TEST(GGUFCorrupt, DeeplyNestedArrays) {
  Img i;
  i.head(3, 0, 1).str("deep").u32(9);
  for (int k = 0; k < 50; ++k) i.u32(9).u64(1);
  const std::string m = parse_error(i.b);
  EXPECT_NE(m.find("nested deeper"), std::string::npos) << m;
}

TEST(GGUF, EmptyArrayAndNoTensors) {
  Img i;
  i.head(3, 0, 1).str("e").u32(9).u32(8).u64(0);
  auto g = GGUFFile::parse(reinterpret_cast<const uint8_t*>(i.b.data()), i.b.size(), "e.gguf");
  ASSERT_TRUE(g.ok()) << g.error().message;
  ASSERT_NE(g->get_array("e"), nullptr);
  EXPECT_TRUE(g->get_string_array("e")->empty());
  EXPECT_TRUE(g->tensors().empty());
}

TEST(GGUFCorrupt, BadBool) {
  Img i;
  i.head(3, 0, 1).str("b").u32(7).u8(5);
  EXPECT_NE(parse_error(i.b).find("not 0 or 1"), std::string::npos);
}

TEST(GGUFCorrupt, BadAlignment) {
  Img i;
  i.head(3, 0, 1).str("general.alignment").u32(4).u32(48);
  EXPECT_NE(parse_error(i.b).find("not a power of two"), std::string::npos);
}

TEST(GGUFCorrupt, UnknownTensorType) {
  Img i;
  i.head(3, 1, 0).str("w").u32(1).u64(32).u32(99).u64(0);
  const std::string m = parse_error(i.b);
  EXPECT_NE(m.find("tensor \"w\": unknown ggml type 99"), std::string::npos) << m;
}

TEST(GGUFCorrupt, TooManyDims) {
  Img i;
  i.head(3, 1, 0).str("w").u32(5);
  for (int k = 0; k < 5; ++k) i.u64(1);
  i.u32(0).u64(0);
  EXPECT_NE(parse_error(i.b).find("n_dims 5"), std::string::npos);
}

TEST(GGUFCorrupt, DimsOverflow) {
  Img i;
  i.head(3, 1, 0).str("w").u32(3).u64(uint64_t(1) << 40).u64(uint64_t(1) << 40).u64(16);
  i.u32(0).u64(0);
  EXPECT_NE(parse_error(i.b).find("overflow"), std::string::npos);
}

TEST(GGUFCorrupt, RowNotMultipleOfBlock) {
  Img i;
  i.head(3, 1, 0).str("w").u32(1).u64(31).u32(2).u64(0);  // Q4_0 needs multiples of 32
  const std::string m = parse_error(i.b);
  EXPECT_NE(m.find("not a multiple of the Q4_0 block size 32"), std::string::npos) << m;
}

TEST(GGUFCorrupt, TensorDataPastEof) {
  Img i;
  i.head(3, 1, 0).str("w").u32(1).u64(64).u32(0).u64(0);  // 64 floats = 256 bytes
  while (i.b.size() % 32) i.b.push_back(0);
  i.b.append(100, '\0');
  const std::string m = parse_error(i.b);
  EXPECT_NE(m.find("tensor \"w\""), std::string::npos) << m;
  EXPECT_NE(m.find("runs past the end of the file"), std::string::npos) << m;
}

TEST(GGUFCorrupt, MisalignedOffset) {
  Img i;
  i.head(3, 1, 0).str("w").u32(1).u64(1).u32(0).u64(4);
  EXPECT_NE(parse_error(i.b).find("not a multiple of the alignment"), std::string::npos);
}

TEST(GGUFCorrupt, DuplicateKeyAndTensor) {
  Img a;
  a.head(3, 0, 2).str("k").u32(0).u8(1).str("k").u32(0).u8(2);
  EXPECT_NE(parse_error(a.b).find("duplicate metadata key \"k\""), std::string::npos);
  Img b;
  b.head(3, 2, 0).str("w").u32(1).u64(1).u32(0).u64(0).str("w").u32(1).u64(1).u32(0).u64(32);
  b.b.append(64, '\0');
  EXPECT_NE(parse_error(b.b).find("duplicate tensor name"), std::string::npos);
}

TEST(GGUFCorrupt, EveryTruncationOfARealFileFailsCleanly) {
  const std::string img = read_all(fixture("meta.gguf"));
  auto full = GGUFFile::parse(reinterpret_cast<const uint8_t*>(img.data()), img.size(), "full");
  ASSERT_TRUE(full.ok());
  size_t end = 0;  // end of the last tensor's data (the file may be padded after it)
  for (const auto& t : full->tensors())
    end = std::max<size_t>(end, full->data_offset() + t.offset + t.nbytes);
  for (size_t n = 0; n < end; n += 3) {
    auto r = GGUFFile::parse(reinterpret_cast<const uint8_t*>(img.data()), n, "cut");
    EXPECT_FALSE(r.ok()) << "prefix of " << n << " bytes parsed";
  }
}
