// AVX-512 build of the I8 decode path's activation quantizer (cpu/w4_kernels.h), compiled with
// the AVX-512 flags and -ffp-contract=off (CMakeLists.txt): its scalar d * sum(q) must stay a
// multiply then an add, as in the SSE2 build, for the two to agree bit for bit.
// GCC 12 reports -W(maybe-)uninitialized inside its own AVX-512 headers (the _mm*_undefined_*
// pass-through operand of plain intrinsics; GCC bug 105593), as in cpu/w4_avx512.cpp.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <immintrin.h>

#include <algorithm>

#include "kernels/cpu/w4_kernels.h"

namespace awq::detail {

// As w4_quantize_x_row_sse2 (w4_matmul.cpp), 16 values per vector: the same max, the same
// fp32 product x * id rounded to nearest even (MXCSR default), the same saturation to int8
// (values are within +-127 anyway) and the same int32 code sums, so the bytes are identical.
void w4_quantize_x_row_avx512(const W4Matrix& w, const float* x, int8_t* xq, float* xd,
                              float* xqs, int sub_bytes) {
  const int G = w.group_size, nb = w.n_sub(), ab = w.act_sub(), na = w.n_act();
  const int n = 32 * ab;  // values per activation block (<= 128)
  for (int g = 0; g < w.n_groups; ++g) {
    float qs = 0.0f;
    for (int j = 0; j < na; ++j) {
      const int k0 = n * j, len = std::min(n, G - k0);  // len < n: group padding, zeros
      const float* src = x + (size_t)g * G + k0;
      __m512 v[8];
      __m512 amax = _mm512_setzero_ps();
      for (int i = 0; i < n / 16; ++i) {
        const int left = len - 16 * i;
        const __mmask16 m = left >= 16 ? (__mmask16)0xFFFF
                            : left <= 0 ? (__mmask16)0
                                        : (__mmask16)((1u << left) - 1);
        v[i] = _mm512_maskz_loadu_ps(m, src + 16 * i);
        amax = _mm512_max_ps(amax, _mm512_abs_ps(v[i]));
      }
      const float am = _mm512_reduce_max_ps(amax);
      const float d = am / 127.0f, id = am > 0.0f ? 127.0f / am : 0.0f;
      const __m512 idv = _mm512_set1_ps(id);
      __m512i sum = _mm512_setzero_si512();
      for (int sb = 0; sb < ab; ++sb) {
        const __m512i q0 = _mm512_cvtps_epi32(_mm512_mul_ps(v[2 * sb], idv));  // nearest even
        const __m512i q1 = _mm512_cvtps_epi32(_mm512_mul_ps(v[2 * sb + 1], idv));
        sum = _mm512_add_epi32(sum, _mm512_add_epi32(q0, q1));
        const __m128i lo = _mm512_cvtsepi32_epi8(q0), hi = _mm512_cvtsepi32_epi8(q1);
        int8_t* dst = xq + (size_t)(g * nb + j * ab + sb) * sub_bytes;
        if (sub_bytes == 32)
          _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst), _mm256_set_m128i(hi, lo));
        else
          _mm512_storeu_si512(dst, _mm512_inserti64x4(
                                       _mm512_castsi256_si512(_mm256_set_m128i(lo, lo)),
                                       _mm256_set_m128i(hi, hi), 1));
      }
      xd[g * na + j] = d;
      qs += d * (float)_mm512_reduce_add_epi32(sum);
    }
    xqs[g] = qs;
  }
}

}  // namespace awq::detail
