#include "core/huge_buffer.h"

#include <sys/mman.h>

#include <new>
#include <utility>

namespace awq {

HugeBufferBase::HugeBufferBase(HugeBufferBase&& o) noexcept
    : ptr_(std::exchange(o.ptr_, nullptr)), bytes_(std::exchange(o.bytes_, 0)) {}

HugeBufferBase& HugeBufferBase::operator=(HugeBufferBase&& o) noexcept {
  if (this != &o) {
    this->~HugeBufferBase();
    ptr_ = std::exchange(o.ptr_, nullptr);
    bytes_ = std::exchange(o.bytes_, 0);
  }
  return *this;
}

HugeBufferBase::~HugeBufferBase() {
  if (ptr_) munmap(ptr_, bytes_);
  ptr_ = nullptr;
  bytes_ = 0;
}

void HugeBufferBase::reset_bytes(size_t bytes) {
  this->~HugeBufferBase();
  if (bytes == 0) return;
  void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) throw std::bad_alloc();
#ifdef MADV_HUGEPAGE
  madvise(p, bytes, MADV_HUGEPAGE);  // advisory: without THP the buffer still works
#endif
  ptr_ = p;
  bytes_ = bytes;
}

}  // namespace awq
