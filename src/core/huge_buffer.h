// Zero-filled anonymous memory for large arrays that are read in scattered runs (the paged KV
// cache): mmap'd, and offered to the kernel for transparent huge pages (madvise, the mode this
// kind of machine runs THP in). With 4 KB pages every 4 KB run of a KV block is a TLB miss;
// with 2 MB pages the whole pool is covered by the second-level TLB. Pages are committed on
// first touch, so resident memory follows the blocks in use. Move-only.
#pragma once
#include <cstddef>

namespace awq {

class HugeBufferBase {
 public:
  HugeBufferBase() = default;
  HugeBufferBase(HugeBufferBase&& o) noexcept;
  HugeBufferBase& operator=(HugeBufferBase&& o) noexcept;
  HugeBufferBase(const HugeBufferBase&) = delete;
  HugeBufferBase& operator=(const HugeBufferBase&) = delete;
  ~HugeBufferBase();

 protected:
  // Replace the contents with `bytes` zero bytes (throws std::bad_alloc if mmap fails).
  void reset_bytes(size_t bytes);
  void* ptr_ = nullptr;
  size_t bytes_ = 0;
};

template <typename T>
class HugeBuffer : public HugeBufferBase {
 public:
  void assign_zero(size_t n) { reset_bytes(n * sizeof(T)); }
  T* data() { return static_cast<T*>(ptr_); }
  const T* data() const { return static_cast<const T*>(ptr_); }
  size_t size() const { return bytes_ / sizeof(T); }
  bool empty() const { return bytes_ == 0; }
};

}  // namespace awq
