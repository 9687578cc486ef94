// A process-wide count of floating-point operations done in dense GEMM-like calls (2*M*N*K
// per matrix product), so that long jobs (awq quantize) can report achieved FLOP/s.
// Counting is one relaxed atomic add per BLAS call: negligible against the call itself.
#pragma once
#include <atomic>
#include <cstdint>

namespace awq {

inline std::atomic<uint64_t>& flop_counter() {
  static std::atomic<uint64_t> n{0};
  return n;
}
inline void count_flops(double n) {
  flop_counter().fetch_add((uint64_t)n, std::memory_order_relaxed);
}
inline uint64_t flops_done() { return flop_counter().load(std::memory_order_relaxed); }

}  // namespace awq
