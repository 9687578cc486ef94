// SafeTensors: fixture written by the Python `safetensors` package, writer round trip and
// sharding, and a suite of deliberately broken files, each checked for a message naming the
// problem.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/half.h"
#include "io/safetensors.h"

namespace fs = std::filesystem;
using namespace awq;

namespace {
std::string fixture(const std::string& name) {
  return std::string(AWQ_SOURCE_DIR) + "/tests/fixtures/io/" + name;
}

struct TmpDir {
  fs::path p;
  TmpDir() {
    p = fs::temp_directory_path() /
        ("awq_st_test_" + std::to_string(getpid()) + "_" +
         ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(p);
    fs::create_directories(p);
  }
  ~TmpDir() { fs::remove_all(p); }
  std::string operator/(const std::string& n) const { return (p / n).string(); }
};

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream f(path, std::ios::binary);
  f.write(bytes.data(), std::streamsize(bytes.size()));
}

// A safetensors image with the given header text and `data_bytes` zero bytes of data.
std::string image(const std::string& header, size_t data_bytes, uint64_t len_override = 0) {
  std::string out;
  const uint64_t n = len_override ? len_override : header.size();
  for (int i = 0; i < 8; ++i) out.push_back(char((n >> (8 * i)) & 0xff));
  out += header;
  out.append(data_bytes, '\0');
  return out;
}

std::string parse_error(const std::string& img) {
  auto r = parse_safetensors(reinterpret_cast<const uint8_t*>(img.data()), img.size(), "bad.st",
                             nullptr);
  EXPECT_FALSE(r.ok()) << "expected an error";
  return r.ok() ? "" : r.error().message;
}

std::vector<uint8_t> from_hex(const std::string& h) {
  std::vector<uint8_t> out;
  for (size_t i = 0; i + 1 < h.size(); i += 2) out.push_back(uint8_t(std::stoi(h.substr(i, 2), nullptr, 16)));
  return out;
}
}  // namespace

TEST(SafeTensors, ReadsFileWrittenByPythonSafetensors) {
  auto st = SafeTensors::open(fixture("st_python.safetensors"));
  ASSERT_TRUE(st.ok()) << st.error().message;
  std::ifstream f(fixture("st_python.expected.json"));
  const auto exp = nlohmann::json::parse(f);
  EXPECT_EQ(st->names().size(), exp.size());
  for (auto it = exp.begin(); it != exp.end(); ++it) {
    const TensorView* v = st->find(it.key());
    ASSERT_NE(v, nullptr) << it.key();
    EXPECT_STREQ(dtype_name(v->dtype), it.value()["dtype"].get<std::string>().c_str()) << it.key();
    EXPECT_EQ(v->shape, it.value()["shape"].get<std::vector<int64_t>>()) << it.key();
    const auto bytes = from_hex(it.value()["hex"].get<std::string>());
    ASSERT_EQ(v->nbytes, bytes.size()) << it.key();
    EXPECT_TRUE(bytes.empty() || std::memcmp(v->data, bytes.data(), bytes.size()) == 0) << it.key();
  }
  EXPECT_EQ(st->metadata().at("format"), "pt");
  EXPECT_EQ(st->metadata().at("note"), "fixture");
  // to_f32 of a bf16 tensor equals the bit-shifted bytes torch wrote
  auto bf = st->to_f32("bf16", {3, 2});
  ASSERT_TRUE(bf.ok()) << bf.error().message;
  const auto raw = from_hex(exp["bf16"]["hex"].get<std::string>());
  for (size_t i = 0; i < 6; ++i)
    EXPECT_EQ(f32_to_bits((*bf)[i]), uint32_t(raw[2 * i] | (raw[2 * i + 1] << 8)) << 16);
  auto bad_shape = st->to_f32("bf16", {2, 3});
  ASSERT_FALSE(bad_shape.ok());
  EXPECT_NE(bad_shape.error().message.find("expected [2, 3]"), std::string::npos);
  auto not_float = st->to_f32("i32");
  ASSERT_FALSE(not_float.ok());
  EXPECT_NE(not_float.error().message.find("I32"), std::string::npos);
  EXPECT_FALSE(st->to_f32("nope").ok());
}

TEST(SafeTensors, WriterRoundTripSingleFile) {
  TmpDir d;
  std::vector<float> a = {1.f, -2.5f, 3.25f, 1e-8f, 65504.f, -0.f};
  std::vector<int32_t> b = {7, -9};
  {
    SafeTensorsWriter w(d.p.string());
    ASSERT_TRUE(w.add_f32("a.f32", DType::F32, {2, 3}, a.data()).ok());
    ASSERT_TRUE(w.add_f32("a.f16", DType::F16, {6}, a.data()).ok());
    ASSERT_TRUE(w.add_f32("a.bf16", DType::BF16, {3, 2}, a.data()).ok());
    ASSERT_TRUE(w.add("b", DType::I32, {2}, b.data(), 8).ok());
    EXPECT_FALSE(w.add("b", DType::I32, {2}, b.data(), 8).ok());  // duplicate
    auto bad = w.add("c", DType::I32, {3}, b.data(), 8);           // span mismatch
    ASSERT_FALSE(bad.ok());
    EXPECT_NE(bad.message().find("needs 12 bytes"), std::string::npos) << bad.message();
    ASSERT_TRUE(w.finish().ok());
  }
  EXPECT_TRUE(fs::exists(d / "model.safetensors"));
  EXPECT_FALSE(fs::exists(d / "model.safetensors.index.json"));
  // Header padded with spaces to a multiple of 8.
  std::ifstream f(d / "model.safetensors", std::ios::binary);
  uint64_t n = 0;
  f.read(reinterpret_cast<char*>(&n), 8);
  EXPECT_EQ(n % 8, 0u);
  auto st = SafeTensors::open(d.p.string());
  ASSERT_TRUE(st.ok()) << st.error().message;
  EXPECT_EQ(st->metadata().at("format"), "pt");
  EXPECT_EQ(*st->to_f32("a.f32", {2, 3}), a);
  auto h = *st->to_f32("a.f16");
  auto bf = *st->to_f32("a.bf16");
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(h[i], round_fp16(a[i]));
    EXPECT_EQ(bf[i], bf16_to_f32(f32_to_bf16(a[i])));
  }
  const TensorView* bv = st->find("b");
  ASSERT_NE(bv, nullptr);
  EXPECT_EQ(std::memcmp(bv->data, b.data(), 8), 0);
}

TEST(SafeTensors, WriterShardsAndIndex) {
  TmpDir d;
  std::vector<float> x(100);
  for (size_t i = 0; i < x.size(); ++i) x[i] = float(i) * 0.5f;
  {
    SafeTensorsWriter w(d.p.string(), 800);  // 2 tensors of 400 bytes per shard
    for (int i = 0; i < 5; ++i)
      ASSERT_TRUE(w.add_f32("t" + std::to_string(i), DType::F32, {10, 10}, x.data()).ok());
    // temp shards exist before finish, with no final names yet
    EXPECT_FALSE(fs::exists(d / "model-00001-of-00003.safetensors"));
    ASSERT_TRUE(w.finish().ok());
  }
  for (const char* f : {"model-00001-of-00003.safetensors", "model-00002-of-00003.safetensors",
                        "model-00003-of-00003.safetensors", "model.safetensors.index.json"})
    EXPECT_TRUE(fs::exists(d / f)) << f;
  size_t n_files = 0;
  for (auto& e : fs::directory_iterator(d.p)) (void)e, ++n_files;
  EXPECT_EQ(n_files, 4u);  // no temp files left
  std::ifstream f(d / "model.safetensors.index.json");
  auto idx = nlohmann::json::parse(f);
  EXPECT_EQ(idx["metadata"]["total_size"].get<uint64_t>(), 5u * 400u);
  EXPECT_EQ(idx["weight_map"]["t4"], "model-00003-of-00003.safetensors");
  auto st = SafeTensors::open(d.p.string());
  ASSERT_TRUE(st.ok()) << st.error().message;
  ASSERT_EQ(st->names().size(), 5u);
  for (int i = 0; i < 5; ++i) EXPECT_EQ(*st->to_f32("t" + std::to_string(i)), x);
}

TEST(SafeTensors, WriterRemovesTempShardsWithoutFinish) {
  TmpDir d;
  std::vector<float> x(100, 1.f);
  {
    SafeTensorsWriter w(d.p.string(), 100);
    ASSERT_TRUE(w.add_f32("t", DType::F32, {100}, x.data()).ok());
    EXPECT_FALSE(fs::is_empty(d.p));  // flushed to a temp shard
  }
  EXPECT_TRUE(fs::is_empty(d.p));
}

// Tensors of several dtypes and sizes (one larger than the writer's 4 MiB copy chunk, one
// empty) across shards of a small max_shard_bytes: every byte reads back unchanged.
TEST(SafeTensors, WriterStreamsShardsBitExact) {
  TmpDir d;
  struct T {
    std::string name;
    DType dtype;
    std::vector<int64_t> shape;
    std::vector<uint8_t> bytes;
  };
  std::vector<T> ts;
  uint32_t rng = 12345;
  auto fill = [&](size_t n) {
    std::vector<uint8_t> b(n);
    for (auto& v : b) v = uint8_t((rng = rng * 1664525u + 1013904223u) >> 24);
    return b;
  };
  ts.push_back({"big.i32", DType::I32, {1300, 1000}, fill(1300u * 1000u * 4u)});  // 5.2 MB
  ts.push_back({"small.u8", DType::U8, {3}, fill(3)});
  ts.push_back({"empty.f32", DType::F32, {0, 7}, {}});
  ts.push_back({"mid.f16", DType::F16, {50, 30}, fill(3000)});
  ts.push_back({"mid.i64", DType::I64, {100}, fill(800)});
  ts.push_back({"odd.i8", DType::I8, {777}, fill(777)});
  ts.push_back({"last.bf16", DType::BF16, {2, 2, 2}, fill(16)});
  {
    SafeTensorsWriter w(d.p.string(), 1000);
    for (auto& t : ts) {
      ASSERT_TRUE(w.add(t.name, t.dtype, t.shape, t.bytes.data(), t.bytes.size()).ok()) << t.name;
    }
    ASSERT_TRUE(w.finish().ok());
  }
  // shards: {big}, {small, empty, mid.f16}, {mid.i64, odd.i8}, {last}
  std::ifstream f(d / "model.safetensors.index.json");
  ASSERT_TRUE(f.good());
  auto idx = nlohmann::json::parse(f);
  EXPECT_EQ(idx["weight_map"]["big.i32"], "model-00001-of-00004.safetensors");
  EXPECT_EQ(idx["weight_map"]["mid.f16"], "model-00002-of-00004.safetensors");
  EXPECT_EQ(idx["weight_map"]["odd.i8"], "model-00003-of-00004.safetensors");
  EXPECT_EQ(idx["weight_map"]["last.bf16"], "model-00004-of-00004.safetensors");
  size_t n_files = 0;
  for (auto& e : fs::directory_iterator(d.p)) (void)e, ++n_files;
  EXPECT_EQ(n_files, 5u);  // 4 shards + index, no temp files
  auto st = SafeTensors::open(d.p.string());
  ASSERT_TRUE(st.ok()) << st.error().message;
  ASSERT_EQ(st->names().size(), ts.size());
  for (auto& t : ts) {
    const TensorView* v = st->find(t.name);
    ASSERT_NE(v, nullptr) << t.name;
    EXPECT_EQ(v->dtype, t.dtype) << t.name;
    EXPECT_EQ(v->shape, t.shape) << t.name;
    ASSERT_EQ(v->nbytes, t.bytes.size()) << t.name;
    EXPECT_TRUE(t.bytes.empty() || std::memcmp(v->data, t.bytes.data(), t.bytes.size()) == 0)
        << t.name;
  }
}

// The writer keeps no tensor bytes: they are on disk as soon as add() returns, before the
// shard is complete, and the caller's buffer may change afterwards.
TEST(SafeTensors, WriterPutsBytesOnDiskAtAdd) {
  TmpDir d;
  std::vector<uint8_t> a(3000, 0xab), b(5000, 0xcd);
  SafeTensorsWriter w(d.p.string(), size_t(1) << 30);
  auto bytes_on_disk = [&] {
    uintmax_t n = 0;
    for (auto& e : fs::directory_iterator(d.p)) n += fs::file_size(e.path());
    return n;
  };
  ASSERT_TRUE(w.add("a", DType::U8, {3000}, a.data(), a.size()).ok());
  EXPECT_GE(bytes_on_disk(), 3000u);
  ASSERT_TRUE(w.add("b", DType::U8, {5000}, b.data(), b.size()).ok());
  EXPECT_GE(bytes_on_disk(), 8000u);
  std::fill(a.begin(), a.end(), 0);  // the writer holds no pointer into the caller's data
  ASSERT_TRUE(w.finish().ok());
  auto st = SafeTensors::open(d.p.string());
  ASSERT_TRUE(st.ok()) << st.error().message;
  const TensorView* v = st->find("a");
  ASSERT_NE(v, nullptr);
  ASSERT_EQ(v->nbytes, 3000u);
  EXPECT_EQ(v->data[0], 0xab);
  EXPECT_EQ(v->data[2999], 0xab);
}

// A writer dropped mid-shard (a completed temp shard plus the open shard's data file on disk)
// leaves the directory as it found it.
TEST(SafeTensors, WriterWithoutFinishLeavesNoFiles) {
  TmpDir d;
  std::vector<float> x(100, 1.f);
  {
    SafeTensorsWriter w(d.p.string(), 500);
    ASSERT_TRUE(w.add_f32("t0", DType::F32, {100}, x.data()).ok());
    ASSERT_TRUE(w.add_f32("t1", DType::F32, {100}, x.data()).ok());  // shard 1 completed
    ASSERT_TRUE(w.add_f32("t2", DType::F32, {100}, x.data()).ok());  // open shard
    size_t n = 0;
    for (auto& e : fs::directory_iterator(d.p)) (void)e, ++n;
    EXPECT_EQ(n, 2u);  // temp shard + temp data file
  }
  EXPECT_TRUE(fs::is_empty(d.p));
}

TEST(SafeTensors, MissingShard) {
  TmpDir d;
  std::vector<float> x(4, 1.f);
  {
    SafeTensorsWriter w(d.p.string(), 8);
    ASSERT_TRUE(w.add_f32("a", DType::F32, {4}, x.data()).ok());
    ASSERT_TRUE(w.add_f32("b", DType::F32, {4}, x.data()).ok());
    ASSERT_TRUE(w.finish().ok());
  }
  fs::remove(d / "model-00002-of-00002.safetensors");
  auto st = SafeTensors::open(d.p.string());
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.error().message.find("model-00002-of-00002.safetensors"), std::string::npos);
  EXPECT_NE(st.error().message.find("does not exist"), std::string::npos) << st.error().message;
}

TEST(SafeTensors, IndexNamesTensorNotInShard) {
  TmpDir d;
  std::vector<float> x(4, 1.f);
  {
    SafeTensorsWriter w(d.p.string(), 8);
    ASSERT_TRUE(w.add_f32("a", DType::F32, {4}, x.data()).ok());
    ASSERT_TRUE(w.add_f32("b", DType::F32, {4}, x.data()).ok());
    ASSERT_TRUE(w.finish().ok());
  }
  write_bytes(d / "model.safetensors.index.json",
              R"({"metadata":{},"weight_map":{"a":"model-00001-of-00002.safetensors",)"
              R"("b":"model-00002-of-00002.safetensors","ghost":"model-00001-of-00002.safetensors"}})");
  auto st = SafeTensors::open(d.p.string());
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.error().message.find("\"ghost\""), std::string::npos) << st.error().message;
}

TEST(SafeTensors, EmptyDirectory) {
  TmpDir d;
  auto st = SafeTensors::open(d.p.string());
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.error().message.find("neither model.safetensors"), std::string::npos);
}

TEST(SafeTensorsCorrupt, TruncatedBelowEightBytes) {
  EXPECT_NE(parse_error(std::string("\x10\0\0", 3)).find("shorter than the 8-byte"),
            std::string::npos);
}

TEST(SafeTensorsCorrupt, TruncatedFileOnDisk) {
  TmpDir d;
  write_bytes(d / "t.safetensors", std::string("\x01\x02\x03\x04", 4));
  auto st = SafeTensors::open(d / "t.safetensors");
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.error().message.find("t.safetensors"), std::string::npos);
  EXPECT_NE(st.error().message.find("4 bytes"), std::string::npos) << st.error().message;
}

TEST(SafeTensorsCorrupt, HeaderLengthPastEof) {
  const std::string m = parse_error(image("{}", 0, 1000));
  EXPECT_NE(m.find("header length 1000 runs past the end"), std::string::npos) << m;
}

TEST(SafeTensorsCorrupt, HeaderLengthHuge) {
  const std::string m = parse_error(image("{}", 0, uint64_t(1) << 40));
  EXPECT_NE(m.find("exceeds the limit"), std::string::npos) << m;
}

TEST(SafeTensorsCorrupt, MalformedJson) {
  const std::string m = parse_error(image(R"({"a": {"dtype": "F32", )", 0));
  EXPECT_NE(m.find("not well-formed JSON"), std::string::npos) << m;
}

TEST(SafeTensorsCorrupt, HeaderNotObject) {
  EXPECT_NE(parse_error(image("[1,2]", 0)).find("must be a JSON object"), std::string::npos);
}

TEST(SafeTensorsCorrupt, EntryNotObject) {
  EXPECT_NE(parse_error(image(R"({"a": 3})", 0)).find("entry must be an object"),
            std::string::npos);
}

TEST(SafeTensorsCorrupt, MissingFields) {
  EXPECT_NE(parse_error(image(R"({"a": {"shape": [1], "data_offsets": [0, 4]}})", 4))
                .find("\"dtype\""),
            std::string::npos);
  EXPECT_NE(parse_error(image(R"({"a": {"dtype": "F32", "data_offsets": [0, 4]}})", 4))
                .find("\"shape\""),
            std::string::npos);
  EXPECT_NE(parse_error(image(R"({"a": {"dtype": "F32", "shape": [1]}})", 4))
                .find("data_offsets"),
            std::string::npos);
}

TEST(SafeTensorsCorrupt, UnknownDtype) {
  const std::string m =
      parse_error(image(R"({"w": {"dtype": "F8_E9", "shape": [1], "data_offsets": [0, 1]}})", 1));
  EXPECT_NE(m.find("tensor \"w\""), std::string::npos) << m;
  EXPECT_NE(m.find("unknown dtype \"F8_E9\""), std::string::npos) << m;
}

TEST(SafeTensorsCorrupt, NegativeShape) {
  const std::string m =
      parse_error(image(R"({"w": {"dtype": "U8", "shape": [-1], "data_offsets": [0, 1]}})", 1));
  EXPECT_NE(m.find("non-negative"), std::string::npos) << m;
}

TEST(SafeTensorsCorrupt, OverlappingOffsets) {
  const std::string m = parse_error(image(
      R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},)"
      R"( "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}})",
      12));
  EXPECT_NE(m.find("overlapping"), std::string::npos) << m;
  EXPECT_NE(m.find("\"a\""), std::string::npos) << m;
  EXPECT_NE(m.find("\"b\""), std::string::npos) << m;
}

TEST(SafeTensorsCorrupt, OffsetsOutOfRange) {
  const std::string m =
      parse_error(image(R"({"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}})", 8));
  EXPECT_NE(m.find("out of range"), std::string::npos) << m;
  EXPECT_NE(m.find("8 bytes"), std::string::npos) << m;
}

TEST(SafeTensorsCorrupt, BeginAfterEnd) {
  const std::string m =
      parse_error(image(R"({"a": {"dtype": "U8", "shape": [0], "data_offsets": [4, 0]}})", 8));
  EXPECT_NE(m.find("begin > end"), std::string::npos) << m;
}

TEST(SafeTensorsCorrupt, HugeShapeOverflows) {
  const std::string m = parse_error(image(
      R"({"a": {"dtype": "F32", "shape": [4294967296, 4294967296, 16], "data_offsets": [0, 4]}})",
      4));
  EXPECT_NE(m.find("overflows"), std::string::npos) << m;
}

TEST(SafeTensorsCorrupt, ByteSizeOverflows) {
  // numel fits in int64 but numel * 8 does not
  const std::string m = parse_error(image(
      R"({"a": {"dtype": "I64", "shape": [4611686018427387904], "data_offsets": [0, 8]}})", 8));
  EXPECT_NE(m.find("overflow"), std::string::npos) << m;
}

TEST(SafeTensorsCorrupt, SpanMismatch) {
  const std::string m =
      parse_error(image(R"({"a": {"dtype": "F16", "shape": [3], "data_offsets": [0, 8]}})", 8));
  EXPECT_NE(m.find("byte span mismatch"), std::string::npos) << m;
  EXPECT_NE(m.find("needs 6 bytes"), std::string::npos) << m;
}

TEST(SafeTensorsCorrupt, DuplicateKey) {
  const std::string m = parse_error(image(
      R"({"a": {"dtype": "U8", "shape": [1], "data_offsets": [0, 1]},)"
      R"( "a": {"dtype": "U8", "shape": [1], "data_offsets": [1, 2]}})",
      2));
  EXPECT_NE(m.find("duplicate key \"a\""), std::string::npos) << m;
}

TEST(SafeTensorsCorrupt, MetadataNotStrings) {
  const std::string m = parse_error(image(R"({"__metadata__": {"format": 1}})", 0));
  EXPECT_NE(m.find("__metadata__"), std::string::npos) << m;
}

TEST(SafeTensorsCorrupt, ValidMinimalParses) {
  const std::string img = image(
      R"({"__metadata__": {"format": "pt"}, "a": {"dtype": "U8", "shape": [2], "data_offsets": [0, 2]}})",
      2);
  std::map<std::string, std::string> meta;
  auto r = parse_safetensors(reinterpret_cast<const uint8_t*>(img.data()), img.size(), "ok.st",
                             &meta);
  ASSERT_TRUE(r.ok()) << r.error().message;
  ASSERT_EQ(r->size(), 1u);
  EXPECT_EQ(meta.at("format"), "pt");
}
