// GGUF v3 writer (the layout io/gguf.h reads): metadata key/values, tensor infos, then the
// tensor data, each tensor aligned to general.alignment (32).
//
// Tensor data is streamed to OUT.tmp-<pid>.data as it arrives (memory stays one tensor); the
// header needs every tensor's size, so finish() writes the header to OUT.tmp-<pid>, appends the
// data file, fsyncs and renames to OUT. Until then OUT is untouched (absent, or the old file with
// overwrite); abort() or the destructor removes both temporaries.
#pragma once
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "core/status.h"
#include "io/gguf.h"

namespace awq {

class GGUFWriter {
 public:
  // Errors: OUT exists and overwrite is false; the temporaries cannot be created.
  static Expected<GGUFWriter> create(const std::string& out_path, bool overwrite);
  GGUFWriter(GGUFWriter&&) noexcept;
  GGUFWriter& operator=(GGUFWriter&&) noexcept;
  GGUFWriter(const GGUFWriter&) = delete;
  GGUFWriter& operator=(const GGUFWriter&) = delete;
  ~GGUFWriter();

  // Metadata, in the order added (a key added twice is an error at finish()).
  void set_u32(const std::string& key, uint32_t v);
  void set_i32(const std::string& key, int32_t v);
  void set_u64(const std::string& key, uint64_t v);
  void set_f32(const std::string& key, float v);
  void set_bool(const std::string& key, bool v);
  void set_string(const std::string& key, const std::string& v);
  void set_string_array(const std::string& key, const std::vector<std::string>& v);
  void set_i32_array(const std::string& key, const std::vector<int32_t>& v);
  void set_f32_array(const std::string& key, const std::vector<float>& v);

  // One tensor: ne innermost first (ne[0] = row length), data in `type`'s ggml layout,
  // nbytes = what the type needs for ne (checked).
  Status add_tensor(const std::string& name, GGMLType type, const std::vector<uint64_t>& ne,
                    const void* data, size_t nbytes);

  Status finish();
  void abort();

  const std::string& path() const { return out_; }
  size_t n_tensors() const { return infos_.size(); }

 private:
  GGUFWriter() = default;
  struct KV {
    std::string key;
    std::string bytes;  // the value's type tag and encoding
  };
  struct Info {
    std::string name;
    GGMLType type;
    std::vector<uint64_t> ne;
    uint64_t offset;
  };
  void put(const std::string& key, std::string bytes);
  template <class T>
  void put_scalar(const std::string& key, GGUFValueType t, T v);
  template <class T>
  void put_array(const std::string& key, GGUFValueType elem, const std::vector<T>& v);
  std::string out_, tmp_, data_tmp_;
  bool overwrite_ = false, done_ = false;
  FILE* data_ = nullptr;
  uint64_t data_size_ = 0;
  std::vector<KV> kv_;
  std::vector<Info> infos_;
};

}  // namespace awq
