// SafeTensors reader (mmap, single file or sharded directory) and writer
// (sharded, index json, temp names renamed on finish).
// Format: u64 LE header length N, N bytes of JSON {name: {dtype, shape, data_offsets:[b,e]},
// "__metadata__": {str: str}}, then the data section; offsets are relative to it.
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

enum class DType : uint8_t { F32, F16, BF16, I32, I64, U8, I8 };
const char* dtype_name(DType t);  // "F32", "F16", ...
size_t dtype_size(DType t);
Expected<DType> parse_dtype(std::string_view s);

struct TensorView {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  const uint8_t* data = nullptr;  // points into the mmapped file
  size_t nbytes = 0;
  std::string file;  // which file it lives in (for error messages)
  int64_t numel() const;
};

class SafeTensors {
 public:
  // path: a .safetensors file, or a directory holding model.safetensors or
  // model.safetensors.index.json (+ its shards).
  static Expected<SafeTensors> open(const std::string& path);
  const TensorView* find(const std::string& name) const;  // nullptr if absent
  const std::vector<std::string>& names() const { return names_; }  // sorted
  // Convert F32/F16/BF16 to f32; error names the tensor (missing / non-float dtype).
  Expected<std::vector<float>> to_f32(const std::string& name) const;
  // Same, but also checks the shape; error says expected vs actual.
  Expected<std::vector<float>> to_f32(const std::string& name,
                                      const std::vector<int64_t>& expected_shape) const;
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  // Drop the resident pages of every mapped file (views stay valid; pages re-fault on access).
  void release_pages() const {
    for (const auto& f : files_) f->release_pages();
  }

 private:
  std::vector<std::shared_ptr<MappedFile>> files_;
  std::map<std::string, TensorView> tensors_;
  std::vector<std::string> names_;
  std::map<std::string, std::string> metadata_;
};

// Parse one safetensors image already in memory (used by the reader and the fuzzer).
// `file` names the source in error messages. Views point into `data`.
Expected<std::vector<TensorView>> parse_safetensors(const uint8_t* data, size_t size,
                                                    const std::string& file,
                                                    std::map<std::string, std::string>* metadata);

class SafeTensorsWriter {
 public:
  // Writes shards into out_dir (which must exist). A shard is flushed (to a temp
  // name) once it holds >= max_shard_bytes, so memory stays bounded by one shard.
  explicit SafeTensorsWriter(std::string out_dir, size_t max_shard_bytes = size_t(2) << 30);
  ~SafeTensorsWriter();  // removes temp shards if finish() was not reached
  Status add(const std::string& name, DType dtype, std::vector<int64_t> shape, const void* data,
             size_t nbytes);
  // Store f32 data as `target` (F32, F16 or BF16; round to nearest even).
  Status add_f32(const std::string& name, DType target, std::vector<int64_t> shape,
                 const float* data);
  // Flush, rename shards to model-0000i-of-0000n.safetensors (or model.safetensors when
  // there is one shard) and write model.safetensors.index.json when sharded.
  // __metadata__ is {"format":"pt"}.
  Status finish();

 private:
  struct Pending {
    std::string name;
    DType dtype;
    std::vector<int64_t> shape;
    std::vector<uint8_t> bytes;
  };
  Status flush_shard();
  std::string out_dir_;
  size_t max_shard_bytes_;
  std::vector<Pending> pending_;
  size_t pending_bytes_ = 0;
  std::vector<std::string> temp_shards_;
  std::vector<std::vector<std::string>> shard_tensor_names_;
  size_t total_bytes_ = 0;
  bool finished_ = false;
};

}  // namespace awq
