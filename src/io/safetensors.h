// SafeTensors reader (mmap, single file or sharded directory) and writer
// (sharded, index json, temp names renamed on finish).
// Format: u64 LE header length N, N bytes of JSON {name: {dtype, shape, data_offsets:[b,e]},
// "__metadata__": {str: str}}, then the data section; offsets are relative to it.
#pragma once
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <set>
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
  // Writes shards into out_dir (which must exist). Tensor bytes are streamed to disk as they
  // are added (a temp data file per shard); only the names, dtypes, shapes and offsets stay in
  // memory. A shard is completed (header + data copied into a temp shard file, in chunks) once
  // it holds >= max_shard_bytes, so memory does not grow with the model. Disk: the open shard
  // is briefly held twice while it is completed.
  explicit SafeTensorsWriter(std::string out_dir, size_t max_shard_bytes = size_t(2) << 30);
  ~SafeTensorsWriter();  // removes every temp file if finish() was not reached
  SafeTensorsWriter(const SafeTensorsWriter&) = delete;
  SafeTensorsWriter& operator=(const SafeTensorsWriter&) = delete;
  Status add(const std::string& name, DType dtype, std::vector<int64_t> shape, const void* data,
             size_t nbytes);
  // Store f32 data as `target` (F32, F16 or BF16; round to nearest even).
  Status add_f32(const std::string& name, DType target, std::vector<int64_t> shape,
                 const float* data);
  // Complete the open shard, rename shards to model-0000i-of-0000n.safetensors (or
  // model.safetensors when there is one shard) and write model.safetensors.index.json when
  // sharded. __metadata__ is {"format":"pt"}.
  Status finish();

 private:
  struct Entry {  // one tensor of the open shard; its bytes are in data_tmp_ at [begin, end)
    std::string name;
    DType dtype;
    std::vector<int64_t> shape;
    uint64_t begin, end;
  };
  Status open_data_file();
  Status flush_shard();
  void close_data_file();  // closes and removes data_tmp_ (if open)
  std::string temp_name(const char* kind) const;
  std::string out_dir_;
  size_t max_shard_bytes_;
  std::vector<Entry> entries_;  // the open shard
  int data_fd_ = -1;            // the open shard's data, appended as tensors arrive
  std::string data_tmp_;
  uint64_t data_bytes_ = 0;
  std::vector<std::string> temp_shards_;
  std::vector<std::vector<std::string>> shard_tensor_names_;
  std::set<std::string> names_;  // every tensor added (duplicate check)
  size_t total_bytes_ = 0;
  unsigned id_;  // distinguishes writers of one process in one directory
  bool finished_ = false;
};

}  // namespace awq
