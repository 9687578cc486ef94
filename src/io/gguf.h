// GGUF reader (versions 2 and 3, little-endian), strict validation, mmap.
//
// Layout: magic "GGUF", u32 version, u64 n_tensors, u64 n_kv, then n_kv key/value pairs
// (key: u64 length + bytes; u32 value type; value), then n_tensors tensor infos
// (name, u32 n_dims, u64 ne[n_dims] innermost first, u32 ggml type, u64 offset), padding to
// general.alignment (default 32), then the data section; tensor offsets are relative to it.
// ne[0] is the row length: a GGUF tensor with ne = [K, N] is a row-major [N][K] matrix.
#pragma once
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/mmap_file.h"
#include "core/status.h"

namespace awq {

enum class GGUFValueType : uint32_t {
  U8 = 0, I8 = 1, U16 = 2, I16 = 3, U32 = 4, I32 = 5, F32 = 6, BOOL = 7,
  STRING = 8, ARRAY = 9, U64 = 10, I64 = 11, F64 = 12,
};
const char* gguf_value_type_name(GGUFValueType t);

// ggml tensor types (numbering of ggml.h; gaps are types removed from ggml).
enum class GGMLType : uint32_t {
  F32 = 0, F16 = 1, Q4_0 = 2, Q4_1 = 3, Q5_0 = 6, Q5_1 = 7, Q8_0 = 8, Q8_1 = 9,
  Q2_K = 10, Q3_K = 11, Q4_K = 12, Q5_K = 13, Q6_K = 14, Q8_K = 15,
  IQ2_XXS = 16, IQ2_XS = 17, IQ3_XXS = 18, IQ1_S = 19, IQ4_NL = 20, IQ3_S = 21, IQ2_S = 22,
  IQ4_XS = 23, I8 = 24, I16 = 25, I32 = 26, I64 = 27, F64 = 28, IQ1_M = 29, BF16 = 30,
  TQ1_0 = 34, TQ2_0 = 35, MXFP4 = 39,
};
// Name ("Q4_K") or "type<N>" for numbers not in the table.
std::string ggml_type_name(uint32_t type);
// Elements per block and bytes per block; false for unknown type numbers.
bool ggml_type_layout(uint32_t type, uint32_t* block_elems, uint32_t* block_bytes);

// One metadata value. Scalars live in u/i/f/b (whichever matches `type`), strings in s,
// arrays in arr (elem_type says what each element is; nested arrays are allowed).
struct GGUFValue {
  GGUFValueType type = GGUFValueType::U8;
  GGUFValueType elem_type = GGUFValueType::U8;  // arrays only
  uint64_t u = 0;
  int64_t i = 0;
  double f = 0;
  bool b = false;
  std::string s;
  std::vector<GGUFValue> arr;
};

struct GGUFTensor {
  std::string name;
  uint32_t type = 0;             // GGMLType number
  std::vector<uint64_t> ne;      // dims, innermost first (ne[0] = row length)
  uint64_t offset = 0;           // relative to the data section
  const uint8_t* data = nullptr; // points into the file image
  size_t nbytes = 0;
  uint64_t numel() const;
  // Row-major shape as PyTorch/HF write it: ne reversed.
  std::vector<int64_t> shape() const;
};

class GGUFFile {
 public:
  // mmap and parse a file.
  static Expected<GGUFFile> open(const std::string& path);
  // Parse an image already in memory (the fuzzer uses this). The image must outlive the
  // returned object; `name` is used in error messages.
  static Expected<GGUFFile> parse(const uint8_t* data, size_t size, const std::string& name);

  const std::string& path() const { return name_; }
  uint32_t version() const { return version_; }
  uint64_t alignment() const { return alignment_; }
  uint64_t data_offset() const { return data_offset_; }  // file offset of the data section

  // Metadata in file order.
  const std::vector<std::pair<std::string, GGUFValue>>& metadata() const { return kv_; }
  const GGUFValue* find(const std::string& key) const;  // nullptr if absent
  bool has(const std::string& key) const { return find(key) != nullptr; }
  // Typed getters: error when absent or of a type that cannot represent the value exactly
  // (integers of any width are accepted when the value fits).
  Expected<std::string> get_string(const std::string& key) const;
  Expected<uint32_t> get_u32(const std::string& key) const;
  Expected<uint64_t> get_u64(const std::string& key) const;
  Expected<int64_t> get_i64(const std::string& key) const;
  Expected<float> get_f32(const std::string& key) const;   // f32/f64/any integer
  Expected<bool> get_bool(const std::string& key) const;
  Expected<std::vector<std::string>> get_string_array(const std::string& key) const;
  Expected<std::vector<int64_t>> get_int_array(const std::string& key) const;
  Expected<std::vector<float>> get_f32_array(const std::string& key) const;
  const GGUFValue* get_array(const std::string& key) const;  // nullptr if absent / not array

  const std::vector<GGUFTensor>& tensors() const { return tensors_; }
  const GGUFTensor* find_tensor(const std::string& name) const;
  // Dequantize to fp32 (row-major, numel() values). Errors name the tensor and its type.
  Expected<std::vector<float>> dequantize(const GGUFTensor& t) const;

 private:
  std::shared_ptr<MappedFile> file_;  // null when parsed from caller memory
  std::string name_;
  uint32_t version_ = 0;
  uint64_t alignment_ = 32;
  uint64_t data_offset_ = 0;
  std::vector<std::pair<std::string, GGUFValue>> kv_;
  std::map<std::string, size_t> kv_index_;
  std::vector<GGUFTensor> tensors_;
  std::map<std::string, size_t> tensor_index_;
};

}  // namespace awq
