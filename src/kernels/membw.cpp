#include "kernels/membw.h"

#include <emmintrin.h>
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <new>

namespace awq {
namespace {

// XOR of every 16-byte chunk of [p, p + n16 * 16): touches every byte, cannot be elided.
__m128i read_range(const __m128i* p, size_t n16) {
  __m128i a0 = _mm_setzero_si128(), a1 = a0, a2 = a0, a3 = a0;
  size_t i = 0;
  for (; i + 4 <= n16; i += 4) {
    a0 = _mm_xor_si128(a0, _mm_load_si128(p + i));
    a1 = _mm_xor_si128(a1, _mm_load_si128(p + i + 1));
    a2 = _mm_xor_si128(a2, _mm_load_si128(p + i + 2));
    a3 = _mm_xor_si128(a3, _mm_load_si128(p + i + 3));
  }
  for (; i < n16; ++i) a0 = _mm_xor_si128(a0, _mm_load_si128(p + i));
  return _mm_xor_si128(_mm_xor_si128(a0, a1), _mm_xor_si128(a2, a3));
}

}  // namespace

double measure_memory_bandwidth_gbs(size_t bytes, int threads) {
  if (threads <= 0) threads = omp_get_max_threads();
  bytes = bytes / 64 * 64;
  if (bytes < 64 * (size_t)threads) return 0.0;
  auto* buf = static_cast<__m128i*>(::operator new(bytes, std::align_val_t(64)));
  const size_t n16 = bytes / 16;
  // First touch from the reading threads (pages land where they are read).
#pragma omp parallel num_threads(threads)
  {
    const int t = omp_get_thread_num(), nt = omp_get_num_threads();
    const size_t b = n16 * t / nt, e = n16 * (t + 1) / nt;
    std::memset(buf + b, t + 1, (e - b) * 16);
  }
  volatile uint64_t sink = 0;
  double best = 0.0;
  for (int pass = 0; pass < 6; ++pass) {
    uint64_t acc = 0;
    const auto t0 = std::chrono::steady_clock::now();
#pragma omp parallel num_threads(threads) reduction(^ : acc)
    {
      const int t = omp_get_thread_num(), nt = omp_get_num_threads();
      const size_t b = n16 * t / nt, e = n16 * (t + 1) / nt;
      const __m128i r = read_range(buf + b, e - b);
      acc ^= (uint64_t)_mm_cvtsi128_si64(r) ^ (uint64_t)_mm_cvtsi128_si64(_mm_unpackhi_epi64(r, r));
    }
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    sink = sink ^ acc;
    if (pass > 0) best = std::max(best, (double)bytes / s / 1e9);  // pass 0 warms up
  }
  (void)sink;
  ::operator delete(buf, std::align_val_t(64));
  return best;
}

}  // namespace awq
