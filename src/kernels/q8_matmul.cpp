// 8-bit weight matmul (kernels/q8_matmul.h): weight quantization, the activation quantizer shared
// by every build, and the driver (x quantized once per call on the calling thread into
// thread_local buffers that only grow, then rows of W split across OpenMP threads).
#include "kernels/q8_matmul.h"

#include <omp.h>

#include <algorithm>
#include <cmath>

#include "core/chunk_pool.h"
#include "core/half.h"

namespace awq {
namespace {

// The block scale: the smallest fp16 value >= amax / 127, so that |w| / d <= 127 and no code is
// clipped (nearest rounding could give d < amax / 127, and for fp16 subnormals the codes of the
// block maximum would then exceed 127). Returns false when amax / 127 overflows fp16.
bool block_scale(float amax, uint16_t* d16) {
  const float t = amax / 127.0f;
  uint16_t h = f32_to_fp16(t);
  if (fp16_to_f32(h) < t) ++h;  // next fp16 up (t >= 0, so the bits increase with the value)
  *d16 = h;
  return std::isfinite(fp16_to_f32(h));
}

// One row: K fp32 weights -> k_padded codes + n_blk fp16 scales. On failure *bad_k is the
// offending column and the result says why.
enum class RowStatus { Ok, NonFinite, TooLarge };
RowStatus quantize_w_row(const float* w, int K, int8_t* q, uint16_t* d, int* bad_k) {
  const int nb = (K + Q8Matrix::kBlock - 1) / Q8Matrix::kBlock;
  for (int b = 0; b < nb; ++b) {
    const int k0 = b * Q8Matrix::kBlock, len = std::min(Q8Matrix::kBlock, K - k0);
    float amax = 0.0f;
    int arg = k0;
    for (int i = 0; i < len; ++i) {
      if (!std::isfinite(w[k0 + i])) {
        *bad_k = k0 + i;
        return RowStatus::NonFinite;
      }
      if (std::fabs(w[k0 + i]) > amax) amax = std::fabs(w[k0 + i]), arg = k0 + i;
    }
    if (!block_scale(amax, &d[b])) {
      *bad_k = arg;
      return RowStatus::TooLarge;
    }
    const float df = fp16_to_f32(d[b]);
    for (int i = 0; i < Q8Matrix::kBlock; ++i) {
      int v = 0;
      if (i < len && df > 0.0f)  // |w / df| <= 127 up to rounding: the clamp is a guard only
        v = std::clamp((int)std::nearbyint(w[k0 + i] / df), -127, 127);
      q[k0 + i] = (int8_t)v;
    }
  }
  return RowStatus::Ok;
}

template <class RowToF32>
Expected<Q8Matrix> quantize(int N, int K, RowToF32 row_to_f32) {
  if (N <= 0 || K <= 0)
    return make_error("q8: shape [", N, ", ", K, "] must have positive rows and columns");
  Q8Matrix m;
  m.N = N;
  m.K = K;
  m.k_padded = (K + Q8Matrix::kBlock - 1) / Q8Matrix::kBlock * Q8Matrix::kBlock;
  const int nb = m.n_blk();
  m.q.assign((size_t)m.n_tiles() * Q8Matrix::kTile * m.k_padded, 0);  // padding rows stay 0
  m.d.assign((size_t)m.n_tiles() * Q8Matrix::kTile * nb, 0);
  int bad_n = -1, bad_k = -1;
  RowStatus bad = RowStatus::Ok;
#pragma omp parallel
  {
    std::vector<float> buf(K);
    std::vector<int8_t> rq(m.k_padded);
    std::vector<uint16_t> rd(nb);
#pragma omp for schedule(static)
    for (int n = 0; n < N; ++n) {
      row_to_f32(n, buf.data());
      int k = -1;
      const RowStatus rs = quantize_w_row(buf.data(), K, rq.data(), rd.data(), &k);
      if (rs != RowStatus::Ok) {
#pragma omp critical
        if (bad_n < 0 || n < bad_n) bad_n = n, bad_k = k, bad = rs;
        continue;
      }
      // into the tiled layout (rows of one tile are written by one thread each: disjoint bytes)
      for (int kk = 0; kk < m.k_padded; ++kk) m.q[m.q_index(n, kk)] = rq[kk];
      for (int b = 0; b < nb; ++b) m.d[m.d_index(n, b)] = rd[b];
    }
  }
  if (bad == RowStatus::NonFinite)
    return make_error("q8: weight [", bad_n, "][", bad_k, "] is not finite");
  if (bad == RowStatus::TooLarge)
    return make_error("q8: weight [", bad_n, "][", bad_k,
                      "] is too large for an fp16 block scale (|w| / 127 > 65504)");
  return m;
}

struct Scratch {
  std::vector<int8_t, AlignedAllocator<int8_t>> xq;
  std::vector<float, AlignedAllocator<float>> xd;
};

}  // namespace

Expected<Q8Matrix> q8_from_f32(const float* w, int N, int K) {
  return quantize(N, K, [&](int n, float* out) {
    std::copy(w + (size_t)n * K, w + (size_t)(n + 1) * K, out);
  });
}

Expected<Q8Matrix> q8_from_f16(const uint16_t* w, int N, int K) {
  return quantize(N, K, [&](int n, float* out) {
    for (int k = 0; k < K; ++k) out[k] = fp16_to_f32(w[(size_t)n * K + k]);
  });
}

void q8_dequantize(const Q8Matrix& w, float* out) {
  for (int n = 0; n < w.N; ++n)
    for (int k = 0; k < w.K; ++k)
      out[(size_t)n * w.K + k] = fp16_to_f32(w.scale(n, k / Q8Matrix::kBlock)) * w.code(n, k);
}

namespace detail {

void q8_quantize_x_row(const float* x, int K, int k_padded, int8_t* xq, float* xd) {
  for (int k0 = 0; k0 < k_padded; k0 += Q8Matrix::kBlock) {
    const int len = std::max(0, std::min(Q8Matrix::kBlock, K - k0));
    float amax = 0.0f;
    for (int i = 0; i < len; ++i) amax = std::max(amax, std::fabs(x[k0 + i]));
    const float id = amax > 0.0f ? 127.0f / amax : 0.0f;
    for (int i = 0; i < Q8Matrix::kBlock; ++i)  // default rounding mode: nearest, ties to even
      xq[k0 + i] = i < len ? (int8_t)std::nearbyint(x[k0 + i] * id) : 0;
    xd[k0 / Q8Matrix::kBlock] = amax / 127.0f;
  }
}

void q8_matmul_with(Q8RowsFn fn, const Q8Matrix& w, const float* x, int M, float* y) {
  if (M <= 0 || w.N <= 0) return;
  thread_local Scratch sc;
  const int Kp = w.k_padded, nb = w.n_blk();
  if (sc.xq.size() < (size_t)M * Kp) sc.xq.resize((size_t)M * Kp);
  if (sc.xd.size() < (size_t)M * nb) sc.xd.resize((size_t)M * nb);
  for (int m = 0; m < M; ++m)
    q8_quantize_x_row(x + (size_t)m * w.K, w.K, Kp, sc.xq.data() + (size_t)m * Kp,
                      sc.xd.data() + (size_t)m * nb);
  const int8_t* xq = sc.xq.data();
  const float* xd = sc.xd.data();
  constexpr int kChunk = 256;  // rows per task (16 tiles): 256 x (K + K/16) bytes (156 KiB at K = 576)
  static_assert(kChunk % Q8Matrix::kTile == 0);
  const int n_chunks = (w.N + kChunk - 1) / kChunk;
  parallel_chunks(n_chunks, omp_get_max_threads(), [&](int c) {
    fn(w, xq, xd, M, c * kChunk, std::min(w.N, (c + 1) * kChunk), y, w.N);
  });
}

Q8RowsFn q8_rows_for(Isa isa) {
  switch (isa) {
    case Isa::Avx512:
      return q8_rows_avx512();
    case Isa::Avx2:
      return q8_rows_avx2();
    default:
      return q8_rows_ref();
  }
}

}  // namespace detail

void q8_matmul(const Q8Matrix& w, const float* x, int M, float* y) {
  static const detail::Q8RowsFn fn = detail::q8_rows_for(w4_active_isa());
  detail::q8_matmul_with(fn, w, x, M, y);
}

}  // namespace awq
