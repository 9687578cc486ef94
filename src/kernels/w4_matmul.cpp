// W4 matmul driver: input preparation, threading, and the two paths.
//  - decode (M <= w4_decode_max_m()): the weight-streaming kernel of the active ISA; output tiles
//    split across OpenMP threads, each weight read from memory once for all M rows.
//  - prefill (larger M): dequantize a block of rows of W to fp32 (all ISAs bit-exact) into a
//    buffer, then cblas_sgemm (OpenBLAS, its own OpenMP threads) on it.
#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <atomic>
#include <cstring>

#include "kernels/cpu/w4_kernels.h"
#include "kernels/w4.h"

namespace awq {
namespace {

// Measured on the 2-core Zen 3 (docs/KERNELS.md): the decode kernel beats dequant + sgemm up to
// M = 32; at 64 sgemm wins.
constexpr int kDefaultDecodeMaxM = 32;
std::atomic<int> g_decode_max_m{kDefaultDecodeMaxM};

// Bytes of fp32 weights dequantized per prefill block (rows rounded to the 8-row tile): large
// blocks give sgemm a wide N (2 MiB was ~10-20% slower than 8-16 MiB for 4096x4096, M=512).
constexpr size_t kPrefillBlockBytes = size_t(8) << 20;

using FloatVec = std::vector<float, AlignedAllocator<float>>;

// Threads for a decode call: fewer for tiny matrices, where fork/join costs more than the work.
int decode_threads(const W4Matrix& w, int M) {
  const double work = (double)w.N * w.k_padded() * (1.0 + 0.25 * (M - 1));
  const int by_work = std::max(1, (int)(work / (64.0 * 1024)));
  return std::max(1, std::min({omp_get_max_threads(), w.n_tiles(), by_work}));
}

void decode_path(const detail::W4Kernels& kern, const W4Matrix& w, const float* x, int M, float* y,
                 const float* bias) {
  const int Kp = w.k_padded();
  thread_local FloatVec xpad, xsum;
  const float* xp = x;
  int ldx = w.K;
  if (Kp != w.K) {  // per-channel with K % 16 != 0: the kernels read whole k-blocks
    xpad.assign((size_t)M * Kp, 0.0f);
    for (int m = 0; m < M; ++m)
      std::memcpy(xpad.data() + (size_t)m * Kp, x + (size_t)m * w.K, sizeof(float) * w.K);
    xp = xpad.data();
    ldx = Kp;
  }
  xsum.resize((size_t)M * w.n_groups);
  const int G = w.group_size;
  for (int m = 0; m < M; ++m)
    for (int g = 0; g < w.n_groups; ++g) {
      const float* xg = x + (size_t)m * w.K + (size_t)g * G;
      float s = 0.0f;
      for (int k = 0; k < G; ++k) s += xg[k];
      xsum[(size_t)m * w.n_groups + g] = s;
    }
  const detail::W4DecodeArgs args{xp, ldx, M, xsum.data(), y, w.N, bias};
  const int T = w.n_tiles();
  const int nt = decode_threads(w, M);
  if (nt == 1) {
    kern.decode(w, args, 0, T);
    return;
  }
  // Dynamic chunks (~8 per thread, each a contiguous run of tiles): a thread that is descheduled
  // on a shared machine does not hold the others back at the join.
  const int chunk = std::max(1, T / (nt * 8));
  const int n_chunks = (T + chunk - 1) / chunk;
#pragma omp parallel for num_threads(nt) schedule(dynamic, 1)
  for (int c = 0; c < n_chunks; ++c) kern.decode(w, args, c * chunk, std::min(T, (c + 1) * chunk));
}

void add_bias(float* y, int M, int N, const float* bias) {
  if (!bias) return;
#pragma omp parallel for schedule(static)
  for (int m = 0; m < M; ++m)
    for (int n = 0; n < N; ++n) y[(size_t)m * N + n] += bias[n];
}

// One block of rows at a time: dequant in parallel, then a multi-threaded sgemm on the block.
// (Tried: per-thread blocks with single-threaded sgemm each; no better on 2 cores, see KERNELS.md.)
void prefill_shared(const detail::W4Kernels& kern, const W4Matrix& w, const float* x, int M,
                    float* y, size_t block_bytes) {
  const int Kp = w.k_padded();
  const int rows =
      (int)std::clamp<size_t>(block_bytes / (sizeof(float) * Kp) / 8 * 8, 8, (size_t)w.N);
  thread_local FloatVec buf_storage;  // per calling thread; the OpenMP workers get the pointer
  buf_storage.resize((size_t)rows * Kp);
  float* const buf = buf_storage.data();
  for (int n0 = 0; n0 < w.N; n0 += rows) {
    const int nb = std::min(rows, w.N - n0);
    const int t0 = n0 / 8, t1 = (n0 + nb) / 8;
#pragma omp parallel for schedule(static)
    for (int t = t0; t < t1; ++t) kern.dequant(w, t, t + 1, buf + (size_t)(t - t0) * 8 * Kp, Kp);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, nb, w.K, 1.0f, x, w.K, buf, Kp, 0.0f,
                y + n0, w.N);
  }
}

void prefill_path(const detail::W4Kernels& kern, const W4Matrix& w, const float* x, int M, float* y,
                  const float* bias) {
  prefill_shared(kern, w, x, M, y, kPrefillBlockBytes);
  add_bias(y, M, w.N, bias);
}

}  // namespace

void w4_set_decode_max_m(int m) { g_decode_max_m = m < 0 ? kDefaultDecodeMaxM : m; }
int w4_decode_max_m() { return g_decode_max_m; }

void w4_matmul_isa(Isa isa, const W4Matrix& w, const float* x, int M, float* y, const float* bias) {
  if (M <= 0 || w.N <= 0) return;
  const detail::W4Kernels& kern = detail::w4_kernels(isa);
  if (M <= g_decode_max_m)
    decode_path(kern, w, x, M, y, bias);
  else
    prefill_path(kern, w, x, M, y, bias);
}

void w4_matmul(const W4Matrix& w, const float* x, int M, float* y, const float* bias) {
  w4_matmul_isa(w4_active_isa(), w, x, M, y, bias);
}

void w4_dequantize_isa(Isa isa, const W4Matrix& w, float* out) {
  const detail::W4Kernels& kern = detail::w4_kernels(isa);
  const int T = w.n_tiles();
#pragma omp parallel for schedule(static)
  for (int t = 0; t < T; ++t) kern.dequant(w, t, t + 1, out + (size_t)t * 8 * w.K, w.K);
}

void w4_dequantize(const W4Matrix& w, float* out) { w4_dequantize_isa(w4_active_isa(), w, out); }

}  // namespace awq
