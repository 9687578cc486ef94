// Read-only memory map of a whole file (empty files map to a null span).
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

#include "core/status.h"

namespace awq {

class MappedFile {
 public:
  static Expected<MappedFile> open(const std::string& path);
  MappedFile() = default;
  MappedFile(MappedFile&& o) noexcept;
  MappedFile& operator=(MappedFile&& o) noexcept;
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  ~MappedFile();

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }
  // Drop this mapping's resident pages (they are re-read from the page cache on the next
  // access). Keeps RSS bounded when a large file is walked once, block by block.
  void release_pages() const;

 private:
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
  std::string path_;
};

// Drop the resident pages wholly inside [p, p + n) of a read-only mapping (MADV_DONTNEED; the
// partial pages at either end are kept, another tensor may share them). For a tensor that was
// just copied out: the copy is then the only one counted in RSS.
void release_mapped_range(const void* p, size_t n);

// Read a whole file into a string.
Expected<std::string> read_text_file(const std::string& path);

// Write `data` to `path` atomically: write path + ".tmp", fsync, rename.
Status write_file_atomic(const std::string& path, const void* data, size_t n);
inline Status write_file_atomic(const std::string& path, const std::string& s) {
  return write_file_atomic(path, s.data(), s.size());
}

}  // namespace awq
