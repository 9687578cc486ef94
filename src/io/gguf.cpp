// GGUF parser: every read goes through Cursor, which checks the bounds and reports the
// offset of what it failed to read. Counts are checked against the bytes left before any
// allocation, so a corrupt count cannot make us allocate or loop for long.
#include "io/gguf.h"

#include <cmath>
#include <cstring>
#include <limits>
#include <set>

#include "io/gguf_dequant.h"

namespace awq {

namespace {
constexpr uint32_t kMagic = 0x46554747;  // "GGUF" little-endian
constexpr int kMaxArrayDepth = 8;
constexpr uint32_t kMaxDims = 4;
constexpr uint64_t kMaxArrayValues = uint64_t(1) << 24;

struct TypeInfo {
  uint32_t id;
  const char* name;
  uint32_t blck, bytes;
};
constexpr TypeInfo kTypes[] = {
    {0, "F32", 1, 4},         {1, "F16", 1, 2},         {2, "Q4_0", 32, 18},
    {3, "Q4_1", 32, 20},      {6, "Q5_0", 32, 22},      {7, "Q5_1", 32, 24},
    {8, "Q8_0", 32, 34},      {9, "Q8_1", 32, 36},      {10, "Q2_K", 256, 84},
    {11, "Q3_K", 256, 110},   {12, "Q4_K", 256, 144},   {13, "Q5_K", 256, 176},
    {14, "Q6_K", 256, 210},   {15, "Q8_K", 256, 292},   {16, "IQ2_XXS", 256, 66},
    {17, "IQ2_XS", 256, 74},  {18, "IQ3_XXS", 256, 98}, {19, "IQ1_S", 256, 50},
    {20, "IQ4_NL", 32, 18},   {21, "IQ3_S", 256, 110},  {22, "IQ2_S", 256, 82},
    {23, "IQ4_XS", 256, 136}, {24, "I8", 1, 1},         {25, "I16", 1, 2},
    {26, "I32", 1, 4},        {27, "I64", 1, 8},        {28, "F64", 1, 8},
    {29, "IQ1_M", 256, 56},   {30, "BF16", 1, 2},       {34, "TQ1_0", 256, 54},
    {35, "TQ2_0", 256, 66},   {39, "MXFP4", 32, 17},
};

const TypeInfo* type_info(uint32_t t) {
  for (const auto& ti : kTypes)
    if (ti.id == t) return &ti;
  return nullptr;
}

struct Cursor {
  const uint8_t* base;
  size_t size;
  size_t pos = 0;
  const std::string& file;
  uint64_t values = 0;  // array elements read so far (bounds memory use)

  size_t left() const { return size - pos; }
  Error short_read(const char* what, uint64_t need) const {
    return make_error(file, ": truncated: reading ", what, " at offset ", pos, " needs ", need,
                      " bytes, only ", left(), " left");
  }
  template <class T>
  Expected<T> read(const char* what) {
    if (left() < sizeof(T)) return short_read(what, sizeof(T));
    T v;
    std::memcpy(&v, base + pos, sizeof(T));  // the format is little-endian, as is the host
    pos += sizeof(T);
    return v;
  }
  Expected<std::string> read_string(const char* what) {
    AWQ_ASSIGN(uint64_t n, read<uint64_t>(what));
    if (n > left())
      return make_error(file, ": ", what, ": string length ", n, " at offset ", pos - 8,
                        " runs past the end of the file (", left(), " bytes left)");
    std::string s(reinterpret_cast<const char*>(base + pos), size_t(n));
    pos += size_t(n);
    return s;
  }
};

// Smallest encoded size of one value of a type (to bound counts before allocating).
uint64_t min_value_size(GGUFValueType t) {
  switch (t) {
    case GGUFValueType::U8: case GGUFValueType::I8: case GGUFValueType::BOOL: return 1;
    case GGUFValueType::U16: case GGUFValueType::I16: return 2;
    case GGUFValueType::U32: case GGUFValueType::I32: case GGUFValueType::F32: return 4;
    case GGUFValueType::U64: case GGUFValueType::I64: case GGUFValueType::F64: return 8;
    case GGUFValueType::STRING: return 8;
    case GGUFValueType::ARRAY: return 12;
  }
  return 1;
}

bool valid_value_type(uint32_t t) { return t <= 12; }

Status read_value(Cursor& c, GGUFValueType type, GGUFValue& v, const std::string& key, int depth) {
  v.type = type;
  const char* what = key.c_str();
  switch (type) {
    case GGUFValueType::U8: { AWQ_ASSIGN(uint8_t x, c.read<uint8_t>(what)); v.u = x; break; }
    case GGUFValueType::I8: { AWQ_ASSIGN(int8_t x, c.read<int8_t>(what)); v.i = x; break; }
    case GGUFValueType::U16: { AWQ_ASSIGN(uint16_t x, c.read<uint16_t>(what)); v.u = x; break; }
    case GGUFValueType::I16: { AWQ_ASSIGN(int16_t x, c.read<int16_t>(what)); v.i = x; break; }
    case GGUFValueType::U32: { AWQ_ASSIGN(uint32_t x, c.read<uint32_t>(what)); v.u = x; break; }
    case GGUFValueType::I32: { AWQ_ASSIGN(int32_t x, c.read<int32_t>(what)); v.i = x; break; }
    case GGUFValueType::U64: { AWQ_ASSIGN(uint64_t x, c.read<uint64_t>(what)); v.u = x; break; }
    case GGUFValueType::I64: { AWQ_ASSIGN(int64_t x, c.read<int64_t>(what)); v.i = x; break; }
    case GGUFValueType::F32: { AWQ_ASSIGN(float x, c.read<float>(what)); v.f = x; break; }
    case GGUFValueType::F64: { AWQ_ASSIGN(double x, c.read<double>(what)); v.f = x; break; }
    case GGUFValueType::BOOL: {
      AWQ_ASSIGN(uint8_t x, c.read<uint8_t>(what));
      if (x > 1)
        return make_error(c.file, ": key \"", key, "\": bool value ", int(x), " at offset ",
                          c.pos - 1, " is not 0 or 1");
      v.b = x != 0;
      break;
    }
    case GGUFValueType::STRING: { AWQ_ASSIGN(v.s, c.read_string(what)); break; }
    case GGUFValueType::ARRAY: {
      if (depth >= kMaxArrayDepth)
        return make_error(c.file, ": key \"", key, "\": arrays nested deeper than ",
                          kMaxArrayDepth);
      AWQ_ASSIGN(uint32_t et, c.read<uint32_t>(what));
      if (!valid_value_type(et))
        return make_error(c.file, ": key \"", key, "\": unknown array element type ", et,
                          " at offset ", c.pos - 4, " (expected 0..12)");
      AWQ_ASSIGN(uint64_t n, c.read<uint64_t>(what));
      const auto etype = GGUFValueType(et);
      if (n > c.left() / min_value_size(etype))
        return make_error(c.file, ": key \"", key, "\": array count ", n, " of ",
                          gguf_value_type_name(etype), " at offset ", c.pos - 8,
                          " cannot fit in the ", c.left(), " bytes left in the file");
      c.values += n;
      if (c.values > kMaxArrayValues)
        return make_error(c.file, ": key \"", key, "\": more than ", kMaxArrayValues,
                          " metadata array elements in total");
      v.elem_type = etype;
      v.arr.resize(size_t(n));
      for (auto& e : v.arr) AWQ_TRY(read_value(c, etype, e, key, depth + 1));
      break;
    }
  }
  return Status::Ok();
}

std::string shape_str(const std::vector<uint64_t>& ne) {
  std::string r = "[";
  for (size_t i = 0; i < ne.size(); ++i) r += (i ? ", " : "") + std::to_string(ne[i]);
  return r + "]";
}
}  // namespace

const char* gguf_value_type_name(GGUFValueType t) {
  static const char* names[] = {"u8",  "i8",   "u16",    "i16",   "u32", "i32", "f32",
                                "bool", "string", "array", "u64", "i64", "f64"};
  const auto i = uint32_t(t);
  return i <= 12 ? names[i] : "unknown";
}

std::string ggml_type_name(uint32_t type) {
  if (const TypeInfo* ti = type_info(type)) return ti->name;
  return "type" + std::to_string(type);
}

bool ggml_type_layout(uint32_t type, uint32_t* block_elems, uint32_t* block_bytes) {
  const TypeInfo* ti = type_info(type);
  if (!ti) return false;
  *block_elems = ti->blck;
  *block_bytes = ti->bytes;
  return true;
}

uint64_t GGUFTensor::numel() const {
  uint64_t n = 1;
  for (uint64_t d : ne) n *= d;
  return n;
}

std::vector<int64_t> GGUFTensor::shape() const {
  return std::vector<int64_t>(ne.rbegin(), ne.rend());
}

Expected<GGUFFile> GGUFFile::open(const std::string& path) {
  AWQ_ASSIGN(MappedFile m, MappedFile::open(path));
  auto mf = std::make_shared<MappedFile>(std::move(m));
  AWQ_ASSIGN(GGUFFile g, parse(mf->data(), mf->size(), path));
  g.file_ = std::move(mf);
  return g;
}

Expected<GGUFFile> GGUFFile::parse(const uint8_t* data, size_t size, const std::string& name) {
  GGUFFile g;
  g.name_ = name;
  Cursor c{data, size, 0, g.name_};
  AWQ_ASSIGN(uint32_t magic, c.read<uint32_t>("magic"));
  if (magic != kMagic) {
    char got[5] = {char(magic & 0xff), char((magic >> 8) & 0xff), char((magic >> 16) & 0xff),
                   char(magic >> 24), 0};
    for (int i = 0; i < 4; ++i)
      if (got[i] < 32 || got[i] > 126) got[i] = '?';
    return make_error(name, ": bad magic \"", got, "\", expected \"GGUF\" (not a GGUF file)");
  }
  AWQ_ASSIGN(g.version_, c.read<uint32_t>("version"));
  if (g.version_ != 2 && g.version_ != 3)
    return make_error(name, ": unsupported GGUF version ", g.version_,
                      " (expected 2 or 3; version 1 files must be re-converted)");
  AWQ_ASSIGN(uint64_t n_tensors, c.read<uint64_t>("tensor count"));
  AWQ_ASSIGN(uint64_t n_kv, c.read<uint64_t>("metadata count"));
  // A key/value pair takes at least 8 (key length) + 4 (type) + 1 bytes, a tensor info
  // at least 8 + 4 + 4 + 8 bytes.
  if (n_kv > c.left() / 13)
    return make_error(name, ": metadata count ", n_kv, " is impossible for a file of ", size,
                      " bytes");
  if (n_tensors > c.left() / 24)
    return make_error(name, ": tensor count ", n_tensors, " is impossible for a file of ", size,
                      " bytes");

  g.kv_.reserve(size_t(n_kv));
  for (uint64_t k = 0; k < n_kv; ++k) {
    AWQ_ASSIGN(std::string key, c.read_string("metadata key"));
    AWQ_ASSIGN(uint32_t t, c.read<uint32_t>("metadata value type"));
    if (!valid_value_type(t))
      return make_error(name, ": key \"", key, "\": unknown value type ", t, " at offset ",
                        c.pos - 4, " (expected 0..12)");
    GGUFValue v;
    AWQ_TRY(read_value(c, GGUFValueType(t), v, key, 0));
    if (g.kv_index_.count(key)) return make_error(name, ": duplicate metadata key \"", key, "\"");
    g.kv_index_[key] = g.kv_.size();
    g.kv_.emplace_back(std::move(key), std::move(v));
  }

  if (const GGUFValue* a = g.find("general.alignment")) {
    if (a->type != GGUFValueType::U32)
      return make_error(name, ": general.alignment has type ", gguf_value_type_name(a->type),
                        ", expected u32");
    if (a->u == 0 || (a->u & (a->u - 1)) != 0)
      return make_error(name, ": general.alignment ", a->u, " is not a power of two");
    g.alignment_ = a->u;
  }

  g.tensors_.reserve(size_t(n_tensors));
  for (uint64_t k = 0; k < n_tensors; ++k) {
    GGUFTensor t;
    AWQ_ASSIGN(t.name, c.read_string("tensor name"));
    const std::string where = name + ": tensor \"" + t.name + "\"";
    AWQ_ASSIGN(uint32_t nd, c.read<uint32_t>("tensor n_dims"));
    if (nd > kMaxDims)
      return make_error(where, ": n_dims ", nd, " exceeds the maximum of ", kMaxDims);
    uint64_t numel = 1;
    for (uint32_t d = 0; d < nd; ++d) {
      AWQ_ASSIGN(uint64_t dim, c.read<uint64_t>("tensor dims"));
      if (dim > uint64_t(INT64_MAX) || __builtin_mul_overflow(numel, dim, &numel) ||
          numel > uint64_t(INT64_MAX))
        return make_error(where, ": dims overflow the element count");
      t.ne.push_back(dim);
    }
    AWQ_ASSIGN(t.type, c.read<uint32_t>("tensor type"));
    AWQ_ASSIGN(t.offset, c.read<uint64_t>("tensor offset"));
    const TypeInfo* ti = type_info(t.type);
    if (!ti) return make_error(where, ": unknown ggml type ", t.type);
    const uint64_t ne0 = t.ne.empty() ? 1 : t.ne[0];
    if (ne0 % ti->blck != 0)
      return make_error(where, ": row length ne[0] = ", ne0, " is not a multiple of the ",
                        ti->name, " block size ", ti->blck);
    uint64_t nbytes = 0;
    if (__builtin_mul_overflow(numel / ti->blck, uint64_t(ti->bytes), &nbytes))
      return make_error(where, ": byte size overflows");
    t.nbytes = size_t(nbytes);
    if (t.offset % g.alignment_ != 0)
      return make_error(where, ": data offset ", t.offset, " is not a multiple of the alignment ",
                        g.alignment_);
    if (g.tensor_index_.count(t.name)) return make_error(where, ": duplicate tensor name");
    g.tensor_index_[t.name] = g.tensors_.size();
    g.tensors_.push_back(std::move(t));
  }

  // Data section starts at the next multiple of the alignment.
  uint64_t start = c.pos;
  if (start % g.alignment_) start += g.alignment_ - start % g.alignment_;
  if (start > size && !g.tensors_.empty())
    return make_error(name, ": data section would start at offset ", start,
                      " past the end of the file (", size, " bytes)");
  g.data_offset_ = start;
  const uint64_t data_size = start <= size ? size - start : 0;
  for (auto& t : g.tensors_) {
    if (t.offset > data_size || t.nbytes > data_size - t.offset)
      return make_error(name, ": tensor \"", t.name, "\" (", ggml_type_name(t.type), " ",
                        shape_str(t.ne), ", ", t.nbytes, " bytes at data offset ", t.offset,
                        ") runs past the end of the file: the data section has ", data_size,
                        " bytes");
    t.data = data + start + t.offset;
  }
  return g;
}

const GGUFValue* GGUFFile::find(const std::string& key) const {
  auto it = kv_index_.find(key);
  return it == kv_index_.end() ? nullptr : &kv_[it->second].second;
}

const GGUFTensor* GGUFFile::find_tensor(const std::string& name) const {
  auto it = tensor_index_.find(name);
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

namespace {
bool is_unsigned(GGUFValueType t) {
  return t == GGUFValueType::U8 || t == GGUFValueType::U16 || t == GGUFValueType::U32 ||
         t == GGUFValueType::U64;
}
bool is_signed(GGUFValueType t) {
  return t == GGUFValueType::I8 || t == GGUFValueType::I16 || t == GGUFValueType::I32 ||
         t == GGUFValueType::I64;
}
}  // namespace

#define AWQ_GGUF_LOOKUP(key)                                                       \
  const GGUFValue* v = find(key);                                                  \
  if (!v) return make_error(name_, ": metadata key \"", key, "\" is missing")

Expected<std::string> GGUFFile::get_string(const std::string& key) const {
  AWQ_GGUF_LOOKUP(key);
  if (v->type != GGUFValueType::STRING)
    return make_error(name_, ": metadata key \"", key, "\" has type ",
                      gguf_value_type_name(v->type), ", expected string");
  return v->s;
}

Expected<uint64_t> GGUFFile::get_u64(const std::string& key) const {
  AWQ_GGUF_LOOKUP(key);
  if (is_unsigned(v->type)) return v->u;
  if (is_signed(v->type) && v->i >= 0) return uint64_t(v->i);
  return make_error(name_, ": metadata key \"", key, "\" has type ",
                    gguf_value_type_name(v->type), ", expected a non-negative integer");
}

Expected<uint32_t> GGUFFile::get_u32(const std::string& key) const {
  AWQ_ASSIGN(uint64_t x, get_u64(key));
  if (x > std::numeric_limits<uint32_t>::max())
    return make_error(name_, ": metadata key \"", key, "\" = ", x, " does not fit in u32");
  return uint32_t(x);
}

Expected<int64_t> GGUFFile::get_i64(const std::string& key) const {
  AWQ_GGUF_LOOKUP(key);
  if (is_signed(v->type)) return v->i;
  if (is_unsigned(v->type) && v->u <= uint64_t(INT64_MAX)) return int64_t(v->u);
  return make_error(name_, ": metadata key \"", key, "\" has type ",
                    gguf_value_type_name(v->type), ", expected an integer");
}

Expected<float> GGUFFile::get_f32(const std::string& key) const {
  AWQ_GGUF_LOOKUP(key);
  if (v->type == GGUFValueType::F32 || v->type == GGUFValueType::F64) return float(v->f);
  if (is_unsigned(v->type)) return float(v->u);
  if (is_signed(v->type)) return float(v->i);
  return make_error(name_, ": metadata key \"", key, "\" has type ",
                    gguf_value_type_name(v->type), ", expected a number");
}

Expected<bool> GGUFFile::get_bool(const std::string& key) const {
  AWQ_GGUF_LOOKUP(key);
  if (v->type != GGUFValueType::BOOL)
    return make_error(name_, ": metadata key \"", key, "\" has type ",
                      gguf_value_type_name(v->type), ", expected bool");
  return v->b;
}

const GGUFValue* GGUFFile::get_array(const std::string& key) const {
  const GGUFValue* v = find(key);
  return v && v->type == GGUFValueType::ARRAY ? v : nullptr;
}

Expected<std::vector<std::string>> GGUFFile::get_string_array(const std::string& key) const {
  AWQ_GGUF_LOOKUP(key);
  if (v->type != GGUFValueType::ARRAY || v->elem_type != GGUFValueType::STRING)
    return make_error(name_, ": metadata key \"", key, "\" is not an array of strings");
  std::vector<std::string> out;
  out.reserve(v->arr.size());
  for (const auto& e : v->arr) out.push_back(e.s);
  return out;
}

Expected<std::vector<int64_t>> GGUFFile::get_int_array(const std::string& key) const {
  AWQ_GGUF_LOOKUP(key);
  if (v->type != GGUFValueType::ARRAY ||
      !(is_signed(v->elem_type) || is_unsigned(v->elem_type) ||
        v->elem_type == GGUFValueType::BOOL))
    return make_error(name_, ": metadata key \"", key, "\" is not an array of integers");
  std::vector<int64_t> out;
  out.reserve(v->arr.size());
  for (const auto& e : v->arr) {
    if (is_unsigned(e.type) && e.u > uint64_t(INT64_MAX))
      return make_error(name_, ": metadata key \"", key, "\": element ", e.u,
                        " does not fit in i64");
    out.push_back(is_unsigned(e.type) ? int64_t(e.u) : e.type == GGUFValueType::BOOL ? e.b : e.i);
  }
  return out;
}

Expected<std::vector<float>> GGUFFile::get_f32_array(const std::string& key) const {
  AWQ_GGUF_LOOKUP(key);
  if (v->type != GGUFValueType::ARRAY ||
      !(v->elem_type == GGUFValueType::F32 || v->elem_type == GGUFValueType::F64))
    return make_error(name_, ": metadata key \"", key, "\" is not an array of floats");
  std::vector<float> out;
  out.reserve(v->arr.size());
  for (const auto& e : v->arr) out.push_back(float(e.f));
  return out;
}

Expected<std::vector<float>> GGUFFile::dequantize(const GGUFTensor& t) const {
  const std::string what = name_ + ": tensor \"" + t.name + "\"";
  const uint64_t n = t.numel();
  if (n > (uint64_t(1) << 36))
    return make_error(what, ": ", n, " elements is too many to dequantize in memory");
  std::vector<float> out(static_cast<size_t>(n));
  AWQ_TRY(dequantize_ggml(t.type, t.data, t.nbytes, out.data(), out.size(), what));
  return out;
}

}  // namespace awq
