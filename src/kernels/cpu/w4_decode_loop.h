// Internal: the loop every ISA's decode entry point shares (cpu/w4_avx2.cpp, cpu/w4_avx512.cpp).
// For each output tile t in [tile_begin, tile_end) and each chunk of at most MaxMC rows of x,
// calls tile(mc, t, m0, fin) with mc a std::integral_constant<int, MC> (so each chunk size is
// its own compile-time kernel instance) and fin[0..MC) the 8 outputs of each row, then adds the
// bias and stores them into y. Include only from the ISA files: it needs their AVX flags.
#pragma once
#include <immintrin.h>

#include <type_traits>

#include "kernels/cpu/w4_kernels.h"

namespace awq::detail {

template <int MaxMC, class Tile>
inline void w4_decode_loop(const W4DecodeArgs& a, int tile_begin, int tile_end, Tile&& tile) {
  static_assert(MaxMC >= 1 && MaxMC <= 6);
  using std::integral_constant;
  for (int t = tile_begin; t < tile_end; ++t) {
    const __m256 bias = a.bias ? _mm256_loadu_ps(a.bias + 8 * t) : _mm256_setzero_ps();
    for (int m0 = 0; m0 < a.M;) {
      __m256 fin[MaxMC];
      // (no std::min: a shared template instance could be emitted with this TU's ISA flags)
      const int mc = a.M - m0 < MaxMC ? a.M - m0 : MaxMC;
      if constexpr (MaxMC >= 6) if (mc == 6) tile(integral_constant<int, 6>{}, t, m0, fin);
      if constexpr (MaxMC >= 5) if (mc == 5) tile(integral_constant<int, 5>{}, t, m0, fin);
      if constexpr (MaxMC >= 4) if (mc == 4) tile(integral_constant<int, 4>{}, t, m0, fin);
      if constexpr (MaxMC >= 3) if (mc == 3) tile(integral_constant<int, 3>{}, t, m0, fin);
      if constexpr (MaxMC >= 2) if (mc == 2) tile(integral_constant<int, 2>{}, t, m0, fin);
      if (mc == 1) tile(integral_constant<int, 1>{}, t, m0, fin);
      for (int m = 0; m < mc; ++m)
        _mm256_storeu_ps(a.y + (size_t)(m0 + m) * a.ldy + 8 * t, _mm256_add_ps(fin[m], bias));
      m0 += mc;
    }
  }
}

}  // namespace awq::detail
