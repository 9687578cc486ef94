#include "runtime/attention.h"

#include <cblas.h>

#include <algorithm>
#include <cstring>
#include <type_traits>

#include "core/half.h"
#include "kernels/w4.h"
#include "model/forward.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define AWQ_ATTN_X86 1
#endif

namespace awq {
namespace {

inline float kv_val(float x) { return x; }
inline float kv_val(uint16_t h) { return fp16_to_f32(h); }
inline float kv_store(float x, float) { return x; }
inline uint16_t kv_store(float x, uint16_t) { return f32_to_fp16(x); }

// Which row kernels the host runs: the W4 kernels' choice (AWQ_ISA forces it for tests).
enum class AttnIsa { Scalar, Avx2, Avx512 };
AttnIsa attn_isa() {
  static const AttnIsa isa = [] {
#ifdef AWQ_ATTN_X86
    switch (w4_active_isa()) {
      case Isa::Avx512: return AttnIsa::Avx512;
      case Isa::Avx2: return AttnIsa::Avx2;
      default: break;
    }
#endif
    return AttnIsa::Scalar;
  }();
  return isa;
}

// Scores and p.v of one query row for a set of G query heads that share one kv head (grouped-
// query attention): each cached key and value is loaded once for all G heads, which is what
// bounds these kernels (the pages come from L2, the FMAs are cheap). Every kernel computes each
// key's score as a function of that head's q and the key alone, with the same arithmetic for any
// G (four partial sums over e % 4, added (0 + 1) + (2 + 3)), and each output element as one
// chain over the keys in order; so a row's result depends neither on G nor on the rows or
// sequences around it (batch invariance). qs[g] / srs[g] / os[g]: head g's query, score row and
// output row.

// Scalar reference (per head, the same arithmetic as the vector kernels' lanes).
template <typename T>
void qk_row_scalar(const float* q, const KvRowsT<T>& kv, int lo, int n, float scale, float* sr) {
  for (int j = lo; j < n; ++j) {
    float d[4] = {0, 0, 0, 0};
    for (int e = 0; e < kv.hd; ++e) d[e % 4] += q[e] * kv_val(kv.k[kv.k_off(j, e)]);
    sr[j] = ((d[0] + d[1]) + (d[2] + d[3])) * scale;
  }
}

template <typename T>
void pv_row_scalar(const float* sr, const KvRowsT<T>& kv, int lo, int n, float* o) {
  std::fill(o, o + kv.hd, 0.0f);
  for (int j = lo; j < n; ++j) {
    const float p = sr[j];
    const T* vj = kv.v + kv.v_off(j);
    for (int e = 0; e < kv.hd; ++e) o[e] += p * kv_val(vj[e]);
  }
}

#ifdef AWQ_ATTN_X86
// Paged caches: the pages of one sequence lie apart in the pool (and in DRAM once the cache
// outgrows L3), so the hardware prefetcher starts cold on each 2 KB page. While the K page of
// keys j0.. is scored, fetch this page's V page (p.v reads it after the softmax) and the K page
// two ahead (scoring a page, ~250 cycles, is shorter than a DRAM access), into L2: with
// _MM_HINT_T0 the 64 prefetches per page held the L1 miss buffers and stalled the loop. Measured
// with build/attention_bench (32 sequences x 216 tokens, docs/RESULTS.md): one decode step's
// attention 8.9-9.3 -> 7.2-7.3 ms on 2 threads, 17.0-17.6 -> 11.7-11.8 ms on 1.
template <typename T>
__attribute__((always_inline)) inline void prefetch_pages(const KvRowsT<T>& kv, int j0, int n, bool first) {
  constexpr size_t kLine = 64 / sizeof(T);
  const size_t page_elems = (size_t)kBlockTokens * kv.hd;
  const T* v = kv.v + kv.page(j0);
  for (size_t i = 0; i < page_elems; i += kLine) _mm_prefetch((const char*)(v + i), _MM_HINT_T1);
  constexpr int kAhead = 2;  // 4 and 6 measured the same
  for (int ahead = first ? 1 : kAhead; ahead <= kAhead; ++ahead) {
    if (j0 + ahead * kBlockTokens >= n) break;
    const T* k = kv.k + kv.page(j0 + ahead * kBlockTokens);
    for (size_t i = 0; i < page_elems; i += kLine) _mm_prefetch((const char*)(k + i), _MM_HINT_T1);
  }
}

__attribute__((target("avx2,fma,f16c"))) inline __m256 load8(const float* p) { return _mm256_loadu_ps(p); }
__attribute__((target("avx2,fma,f16c"))) inline __m256 load8(const uint16_t* p) {
  return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}

// AVX2: a page's 16 keys are two 8-lane vectors. One step adds dimension e of G heads into
// partial sum U (U a template constant, so a[] stays in registers).
template <int G, int U, typename T>
__attribute__((target("avx2,fma,f16c"), always_inline)) inline void qk_step_avx2(
    const float* const* qs, const T* kt, int e, __m256 (&a)[G][4][2]) {
  const __m256 k0 = load8(kt + (size_t)e * kBlockTokens), k1 = load8(kt + (size_t)e * kBlockTokens + 8);
#pragma GCC unroll 4
  for (int g = 0; g < G; ++g) {
    const __m256 qe = _mm256_broadcast_ss(qs[g] + e);
    a[g][U][0] = _mm256_fmadd_ps(qe, k0, a[g][U][0]);
    a[g][U][1] = _mm256_fmadd_ps(qe, k1, a[g][U][1]);
  }
}

template <int G, typename T>
__attribute__((target("avx2,fma,f16c"))) void qk_avx2(const float* const* qs, const KvRowsT<T>& kv,
                                                  int lo, int n, float scale, float* const* srs) {
  const int hd = kv.hd;
  const __m256 sc = _mm256_set1_ps(scale);
  for (int j0 = lo - lo % kBlockTokens; j0 < n; j0 += kBlockTokens) {
    const T* kt = kv.k + kv.page(j0);
    if (kv.table) prefetch_pages(kv, j0, n, j0 <= lo);
    __m256 a[G][4][2];
    for (auto& g : a)
      for (auto& u : g) u[0] = u[1] = _mm256_setzero_ps();
    int e = 0;
    for (; e + 4 <= hd; e += 4) {
      qk_step_avx2<G, 0>(qs, kt, e, a);
      qk_step_avx2<G, 1>(qs, kt, e + 1, a);
      qk_step_avx2<G, 2>(qs, kt, e + 2, a);
      qk_step_avx2<G, 3>(qs, kt, e + 3, a);
    }
    if (e < hd) qk_step_avx2<G, 0>(qs, kt, e, a);
    if (e + 1 < hd) qk_step_avx2<G, 1>(qs, kt, e + 1, a);
    if (e + 2 < hd) qk_step_avx2<G, 2>(qs, kt, e + 2, a);
    const int t0 = std::max(lo, j0), t1 = std::min(n, j0 + kBlockTokens);
    for (int g = 0; g < G; ++g) {
      alignas(32) float out[kBlockTokens];
      for (int h = 0; h < 2; ++h) {
        const __m256 s = _mm256_add_ps(_mm256_add_ps(a[g][0][h], a[g][1][h]), _mm256_add_ps(a[g][2][h], a[g][3][h]));
        _mm256_store_ps(out + 8 * h, _mm256_mul_ps(s, sc));
      }
      std::memcpy(srs[g] + t0, out + (t0 - j0), (size_t)(t1 - t0) * sizeof(float));
    }
  }
}

// o_g[c, c + 8 NV) for G heads, one pass over the keys in order.
template <int G, int NV, typename T>
__attribute__((target("avx2,fma,f16c"))) void pv_avx2(const float* const* srs, const KvRowsT<T>& kv,
                                                  int lo, int n, float* const* os) {
  for (int c = 0; c < kv.hd; c += 8 * NV) {
    __m256 acc[G][NV];
    for (auto& g : acc)
      for (auto& x : g) x = _mm256_setzero_ps();
    for (int j = lo; j < n; ++j) {
      const T* vj = kv.v + kv.v_off(j) + c;
      __m256 v[NV];
      for (int i = 0; i < NV; ++i) v[i] = load8(vj + 8 * i);
#pragma GCC unroll 4
      for (int g = 0; g < G; ++g) {
        const __m256 p = _mm256_broadcast_ss(srs[g] + j);
        for (int i = 0; i < NV; ++i) acc[g][i] = _mm256_fmadd_ps(p, v[i], acc[g][i]);
      }
    }
    for (int g = 0; g < G; ++g)
      for (int i = 0; i < NV; ++i) _mm256_storeu_ps(os[g] + c + 8 * i, acc[g][i]);
  }
}

// AVX-512: a page's 16 keys are one vector.
__attribute__((target("avx512f,avx512vl"))) inline __m512 load16(const float* p) { return _mm512_loadu_ps(p); }
__attribute__((target("avx512f,avx512vl"))) inline __m512 load16(const uint16_t* p) {
  // (maskz: GCC 12 warns that the unmasked form's undefined source "may be used uninitialized")
  return _mm512_maskz_cvtph_ps((__mmask16)0xFFFF, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
}

template <int G, int U, typename T>
__attribute__((target("avx512f,avx512vl"), always_inline)) inline void qk_step_avx512(
    const float* const* qs, const T* kt, int e, __m512 (&a)[G][4]) {
  const __m512 k = load16(kt + (size_t)e * kBlockTokens);
#pragma GCC unroll 4
  for (int g = 0; g < G; ++g) a[g][U] = _mm512_fmadd_ps(_mm512_set1_ps(qs[g][e]), k, a[g][U]);
}

template <int G, typename T>
__attribute__((target("avx512f,avx512vl"))) void qk_avx512(const float* const* qs, const KvRowsT<T>& kv,
                                                        int lo, int n, float scale, float* const* srs) {
  const int hd = kv.hd;
  const __m512 sc = _mm512_set1_ps(scale);
  for (int j0 = lo - lo % kBlockTokens; j0 < n; j0 += kBlockTokens) {
    const T* kt = kv.k + kv.page(j0);
    if (kv.table) prefetch_pages(kv, j0, n, j0 <= lo);
    __m512 a[G][4];
    for (auto& g : a)
      for (auto& u : g) u = _mm512_setzero_ps();
    int e = 0;
    for (; e + 4 <= hd; e += 4) {
      qk_step_avx512<G, 0>(qs, kt, e, a);
      qk_step_avx512<G, 1>(qs, kt, e + 1, a);
      qk_step_avx512<G, 2>(qs, kt, e + 2, a);
      qk_step_avx512<G, 3>(qs, kt, e + 3, a);
    }
    if (e < hd) qk_step_avx512<G, 0>(qs, kt, e, a);
    if (e + 1 < hd) qk_step_avx512<G, 1>(qs, kt, e + 1, a);
    if (e + 2 < hd) qk_step_avx512<G, 2>(qs, kt, e + 2, a);
    const int t0 = std::max(lo, j0), t1 = std::min(n, j0 + kBlockTokens);
    const __mmask16 m = (__mmask16)(((1u << (t1 - j0)) - 1) & ~((1u << (t0 - j0)) - 1));
    for (int g = 0; g < G; ++g) {
      const __m512 s = _mm512_add_ps(_mm512_add_ps(a[g][0], a[g][1]), _mm512_add_ps(a[g][2], a[g][3]));
      _mm512_mask_storeu_ps(srs[g] + j0, m, _mm512_mul_ps(s, sc));
    }
  }
}

template <int G, int NV, typename T>
__attribute__((target("avx512f,avx512vl"))) void pv_avx512(const float* const* srs, const KvRowsT<T>& kv,
                                                        int lo, int n, float* const* os) {
  for (int c = 0; c < kv.hd; c += 16 * NV) {
    __m512 acc[G][NV];
    for (auto& g : acc)
      for (auto& x : g) x = _mm512_setzero_ps();
    for (int j = lo; j < n; ++j) {
      const T* vj = kv.v + kv.v_off(j) + c;
      __m512 v[NV];
      for (int i = 0; i < NV; ++i) v[i] = load16(vj + 16 * i);
#pragma GCC unroll 4
      for (int g = 0; g < G; ++g) {
        const __m512 p = _mm512_set1_ps(srs[g][j]);
        for (int i = 0; i < NV; ++i) acc[g][i] = _mm512_fmadd_ps(p, v[i], acc[g][i]);
      }
    }
    for (int g = 0; g < G; ++g)
      for (int i = 0; i < NV; ++i) _mm512_storeu_ps(os[g] + c + 16 * i, acc[g][i]);
  }
}

// Heads in sets of G <= 4 (AVX-512: 4 G accumulators; AVX2 qk: 8 G of its 16 registers, so
// sets of 2 there): f(std::integral_constant<int, G>) for a runtime G in [1, 4].
template <typename F>
void with_set_size(int G, F&& f) {
  switch (G) {
    case 1: return f(std::integral_constant<int, 1>{});
    case 2: return f(std::integral_constant<int, 2>{});
    case 3: return f(std::integral_constant<int, 3>{});
    default: return f(std::integral_constant<int, 4>{});
  }
}
#endif

// Scores of G heads (any G >= 1) against keys [lo, n).
template <typename T>
void qk_heads(int G, const float* const* qs, const KvRowsT<T>& kv, int lo, int n, float scale,
              float* const* srs) {
#ifdef AWQ_ATTN_X86
  const AttnIsa isa = attn_isa();
  if (isa != AttnIsa::Scalar) {
    const int set = isa == AttnIsa::Avx512 ? 4 : 2;
    for (int g = 0; g < G; g += set) {
      const int gs = std::min(set, G - g);
      if (isa == AttnIsa::Avx512)
        with_set_size(gs, [&](auto c) { qk_avx512<c.value>(qs + g, kv, lo, n, scale, srs + g); });
      else if (gs == 2)
        qk_avx2<2>(qs + g, kv, lo, n, scale, srs + g);
      else
        qk_avx2<1>(qs + g, kv, lo, n, scale, srs + g);
    }
    return;
  }
#endif
  for (int g = 0; g < G; ++g) qk_row_scalar(qs[g], kv, lo, n, scale, srs[g]);
}

// o_g = sum_j p_gj v_j for G heads.
template <typename T>
void pv_heads(int G, const float* const* srs, const KvRowsT<T>& kv, int lo, int n, float* const* os) {
#ifdef AWQ_ATTN_X86
  const int hd = kv.hd;
  const AttnIsa isa = attn_isa();
  if (isa == AttnIsa::Avx512 && hd % 16 == 0) {
    for (int g = 0; g < G; g += 4) {
      const int gs = std::min(4, G - g);
      with_set_size(gs, [&](auto c) {
        if (hd % 64 == 0)
          pv_avx512<c.value, 4>(srs + g, kv, lo, n, os + g);
        else if (hd % 32 == 0)
          pv_avx512<c.value, 2>(srs + g, kv, lo, n, os + g);
        else
          pv_avx512<c.value, 1>(srs + g, kv, lo, n, os + g);
      });
    }
    return;
  }
  if (isa != AttnIsa::Scalar && hd % 8 == 0) {
    for (int g = 0; g < G; g += 4) {
      const int gs = std::min(4, G - g);
      with_set_size(gs, [&](auto c) {
        if (hd % 32 == 0)
          pv_avx2<c.value, 4>(srs + g, kv, lo, n, os + g);
        else
          pv_avx2<c.value, 1>(srs + g, kv, lo, n, os + g);
      });
    }
    return;
  }
#endif
  for (int g = 0; g < G; ++g) pv_row_scalar(srs[g], kv, lo, n, os[g]);
}

}  // namespace

template <typename T>
void kv_put_k(T* page, int t, const float* src, int hd) {
  for (int e = 0; e < hd; ++e) page[(size_t)e * kBlockTokens + t] = kv_store(src[e], T{});
}
template <typename T>
void kv_put_v(T* page, int t, const float* src, int hd) {
  T* dst = page + (size_t)t * hd;
  for (int e = 0; e < hd; ++e) dst[e] = kv_store(src[e], T{});
}
template <typename T>
void kv_gather(float* dst_k, float* dst_v, const T* k_page, const T* v_page, int n, int hd) {
  for (int t = 0; t < n; ++t)
    for (int e = 0; e < hd; ++e) dst_k[(size_t)t * hd + e] = kv_val(k_page[(size_t)e * kBlockTokens + t]);
  for (size_t i = 0; i < (size_t)n * hd; ++i) dst_v[i] = kv_val(v_page[i]);
}

template <typename T>
void cached_attention_group(const ModelConfig& cfg, int window, const float* q, int q_stride,
                            int G, int rows, int p0, const KvRowsT<T>& kv, float scale, float* out,
                            std::vector<float>& scores, bool gemm) {
  const int S = p0 + rows;  // keys visible to the last row
  const int hd = kv.hd;
  if constexpr (std::is_same_v<T, float>) {
    if (gemm) {  // gathered row-major fp32 rows (kv.table null), one head at a time
      scores.resize((size_t)rows * S);
      for (int g = 0; g < G; ++g) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, S, hd, scale, q + (size_t)g * hd,
                    q_stride, kv.k, hd, 0.0f, scores.data(), S);
        for (int i = 0; i < rows; ++i)
          attention_softmax(cfg, window, scores.data() + (size_t)i * S, p0 + i, S);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, hd, S, 1.0f, scores.data(), S,
                    kv.v, hd, 0.0f, out + (size_t)g * hd, q_stride);
      }
      return;
    }
  }
  scores.resize((size_t)G * S);
  thread_local std::vector<const float*> qs;  // per-head pointers of the current row
  thread_local std::vector<float*> srs, os;
  qs.resize(G);
  srs.resize(G);
  os.resize(G);
  for (int i = 0; i < rows; ++i) {
    const int n_vis = p0 + i + 1;
    const int lo = window > 0 ? std::max(0, n_vis - window) : 0;  // keys before lo are masked
    for (int g = 0; g < G; ++g) {
      qs[g] = q + (size_t)i * q_stride + (size_t)g * hd;
      srs[g] = scores.data() + (size_t)g * S;
      os[g] = out + (size_t)i * q_stride + (size_t)g * hd;
    }
    qk_heads(G, qs.data(), kv, lo, n_vis, scale, srs.data());
    for (int g = 0; g < G; ++g) attention_softmax(cfg, window, srs[g], p0 + i, S);
    pv_heads(G, srs.data(), kv, lo, n_vis, os.data());
  }
}

#define AWQ_ATTN_INSTANTIATE(T)                                                                    \
  template void kv_put_k<T>(T*, int, const float*, int);                                           \
  template void kv_put_v<T>(T*, int, const float*, int);                                           \
  template void kv_gather<T>(float*, float*, const T*, const T*, int, int);                        \
  template void cached_attention_group<T>(const ModelConfig&, int, const float*, int, int, int, int, \
                                          const KvRowsT<T>&, float, float*, std::vector<float>&, bool);
AWQ_ATTN_INSTANTIATE(float)
AWQ_ATTN_INSTANTIATE(uint16_t)

}  // namespace awq
