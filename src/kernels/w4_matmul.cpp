// W4 matmul driver: input preparation, threading, and the two paths.
//  - decode (M <= w4_decode_max_m()): the weight-streaming kernel of the active ISA; output tiles
//    split across OpenMP threads, each weight read from memory once for all M rows. Activations
//    are prepared once per call on the calling thread (I8: quantized to int8 per 32-value block;
//    F32: copied only when groups need padding) into thread_local buffers that only grow.
//  - prefill (larger M): dequantize a block of rows of W to fp32 (all ISAs bit-exact) into a
//    buffer, then cblas_sgemm (OpenBLAS, its own OpenMP threads) on it.
#include <cblas.h>
#include <emmintrin.h>  // SSE2 (x86-64 baseline): the activation quantizer
#include <omp.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "core/chunk_pool.h"
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

using Int8Vec = std::vector<int8_t, AlignedAllocator<int8_t>>;

// Threads for a decode call: fewer for tiny matrices, where fork/join costs more than the work.
// work_per_thread: weight-equivalents one thread should get at least (the I8 kernel does ~3x
// more weights per second than the F32 one, so it needs more of them to pay for a fork/join).
int decode_threads(const W4Matrix& w, int M, double work_per_thread) {
  const double work = (double)w.N * w.k_padded() * (1.0 + 0.25 * (M - 1));
  const int by_work = std::max(1, (int)(work / work_per_thread));
  return std::max(1, std::min({omp_get_max_threads(), w.n_tiles(), by_work}));
}

W4Decode resolve_decode_env() {
  const char* e = std::getenv("AWQ_DECODE");
  std::string warning;
  const W4Decode mode = detail::w4_resolve_decode(e, &warning);
  if (!warning.empty()) std::fprintf(stderr, "warning: %s\n", warning.c_str());
  return mode;
}

// -1: not set by w4_set_decode_mode (use AWQ_DECODE / the default).
std::atomic<int> g_decode_mode{-1};

// Per calling thread, reused across calls (grow only): no heap allocation in steady state.
struct DecodeScratch {
  FloatVec xpad, xsum, xd, xqs;
  Int8Vec xq;
};

// Tiles per claimed chunk of a decode call: ~8 chunks per thread, each a contiguous run of tiles.
int decode_chunk_tiles(int n_tiles, int nt) { return std::max(1, n_tiles / (nt * 8)); }

void run_decode(detail::W4DecodeFn fn, const W4Matrix& w, const detail::W4DecodeArgs& args,
                int nt) {
  const int T = w.n_tiles();
  if (nt == 1) {
    fn(w, args, 0, T);
    return;
  }
  // Dynamic chunks (~8 per thread, each a contiguous run of tiles), claimed one by one: a thread
  // that is descheduled on a shared machine does not hold the others back, not even at the join
  // (core/chunk_pool.h).
  const int chunk = decode_chunk_tiles(T, nt);
  const int n_chunks = (T + chunk - 1) / chunk;
  parallel_chunks(n_chunks, nt,
                  [&](int c) { fn(w, args, c * chunk, std::min(T, (c + 1) * chunk)); });
}

void decode_f32(const detail::W4Kernels& kern, const W4Matrix& w, const float* x, int M, float* y,
                const float* bias) {
  thread_local DecodeScratch sc;
  const int Kp = w.k_padded(), G = w.group_size;
  const float* xp = x;
  int ldx = w.K;
  if (Kp != w.K) {  // groups padded to a multiple of 32: the kernels read whole sub-blocks
    sc.xpad.assign((size_t)M * Kp, 0.0f);
    for (int m = 0; m < M; ++m)
      for (int g = 0; g < w.n_groups; ++g)
        std::memcpy(sc.xpad.data() + (size_t)m * Kp + (size_t)g * w.group_len,
                    x + (size_t)m * w.K + (size_t)g * G, sizeof(float) * G);
    xp = sc.xpad.data();
    ldx = Kp;
  }
  sc.xsum.resize((size_t)M * w.n_groups);
  for (int m = 0; m < M; ++m)
    for (int g = 0; g < w.n_groups; ++g) {
      const float* xg = x + (size_t)m * w.K + (size_t)g * G;
      float s = 0.0f;
      for (int k = 0; k < G; ++k) s += xg[k];
      sc.xsum[(size_t)m * w.n_groups + g] = s;
    }
  detail::W4DecodeArgs args{};
  args.M = M;
  args.y = y;
  args.ldy = w.N;
  args.bias = bias;
  args.x = xp;
  args.ldx = ldx;
  args.xsum = sc.xsum.data();
  run_decode(kern.decode, w, args, decode_threads(w, M, 64.0 * 1024));
}

// x quantized for the I8 kernels of matrices shaped like w (K, group size); rows split across
// the threads when there are enough of them (each row's result is the same either way).
detail::W4DecodeArgs quantize_x_i8(Isa isa, const W4Matrix& w, const float* x, int M) {
  thread_local DecodeScratch sc;
  const int n_blk = w.k_padded() / W4Matrix::kSubK;
  const int n_act = w.n_groups * w.n_act();
  const int sub_bytes = detail::xq_sub_bytes(isa);
  const size_t ldxq = (size_t)sub_bytes * n_blk;
  sc.xq.resize((size_t)M * ldxq);
  sc.xd.resize((size_t)M * n_act);
  sc.xqs.resize((size_t)M * w.n_groups);
  int8_t* xq = sc.xq.data();
  float *xd = sc.xd.data(), *xqs = sc.xqs.data();
  const auto row = [&](int m) {
    detail::w4_quantize_x_row(w, x + (size_t)m * w.K, xq + (size_t)m * ldxq, xd + (size_t)m * n_act,
                              xqs + (size_t)m * w.n_groups, sub_bytes);
  };
  // Rows split in contiguous halves (OpenMP static), as the norms and SiLU that write x split
  // them: each thread then mostly quantizes rows it wrote itself, still in its own cache (with
  // chunks claimed dynamically, half the rows came from the other core and the quantizer's
  // first loads stalled: ~40 % of its samples in a serve profile at 32 streams). The next row
  // is prefetched while one is quantized.
  if ((size_t)M * w.K >= 8192 && omp_get_max_threads() > 1) {
#pragma omp parallel for schedule(static)
    for (int m = 0; m < M; ++m) {
      if (m + 1 < M)
        for (int k = 0; k < w.K; k += 16)
          _mm_prefetch(reinterpret_cast<const char*>(x + (size_t)(m + 1) * w.K + k), _MM_HINT_T0);
      row(m);
    }
  } else {
    for (int m = 0; m < M; ++m) row(m);
  }
  detail::W4DecodeArgs args{};
  args.M = M;
  args.xq = xq;
  args.ldxq = ldxq;
  args.xd = xd;
  args.ldxd = n_act;
  args.xqs = xqs;
  return args;
}

void decode_i8(const detail::W4Kernels& kern, const W4Matrix& w, const float* x, int M, float* y,
               const float* bias) {
  detail::W4DecodeArgs args = quantize_x_i8(kern.isa, w, x, M);
  args.y = y;
  args.ldy = w.N;
  args.bias = bias;
  run_decode(kern.decode_i8, w, args, decode_threads(w, M, 128.0 * 1024));
}

bool same_x_layout(const W4Matrix& a, const W4Matrix& b) {
  return a.K == b.K && a.group_size == b.group_size && a.n_groups == b.n_groups &&
         a.group_len == b.group_len;
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

W4Decode w4_decode_mode() {
  const int set = g_decode_mode;
  if (set >= 0) return (W4Decode)set;
  static const W4Decode from_env = resolve_decode_env();
  return from_env;
}

void w4_set_decode_mode(W4Decode mode) { g_decode_mode = (int)mode; }

const char* decode_name(W4Decode mode) { return mode == W4Decode::I8 ? "i8" : "f32"; }

void w4_matmul_isa(Isa isa, W4Decode mode, const W4Matrix& w, const float* x, int M, float* y,
                   const float* bias) {
  if (M <= 0 || w.N <= 0) return;
  const detail::W4Kernels& kern = detail::w4_kernels(isa);
  if (M > g_decode_max_m)
    prefill_path(kern, w, x, M, y, bias);
  else if (mode == W4Decode::I8)
    decode_i8(kern, w, x, M, y, bias);
  else
    decode_f32(kern, w, x, M, y, bias);
}

void w4_matmul_isa(Isa isa, const W4Matrix& w, const float* x, int M, float* y, const float* bias) {
  w4_matmul_isa(isa, w4_decode_mode(), w, x, M, y, bias);
}

void w4_matmul(const W4Matrix& w, const float* x, int M, float* y, const float* bias) {
  w4_matmul_isa(w4_active_isa(), w, x, M, y, bias);
}

void w4_matmul_multi(const W4Out* outs, int n_outs, const float* x, int M) {
  if (M <= 0 || n_outs <= 0) return;
  bool fused = n_outs > 1 && M <= g_decode_max_m && w4_decode_mode() == W4Decode::I8;
  for (int i = 1; fused && i < n_outs; ++i) fused = same_x_layout(*outs[0].w, *outs[i].w);
  if (!fused) {
    for (int i = 0; i < n_outs; ++i) w4_matmul(*outs[i].w, x, M, outs[i].y, outs[i].bias);
    return;
  }
  const detail::W4Kernels& kern = detail::w4_kernels(w4_active_isa());
  const detail::W4DecodeArgs base = quantize_x_i8(kern.isa, *outs[0].w, x, M);
  // Chunks as run_decode cuts each matrix (a contiguous run of its tiles), all in one list.
  struct Chunk {
    int out, t0, t1;
  };
  // (the caller's buffers: a thread_local named inside the lambda would be the worker's own)
  thread_local std::vector<Chunk> chunks_tl;
  thread_local std::vector<detail::W4DecodeArgs> args_tl;
  std::vector<Chunk>& chunks = chunks_tl;
  std::vector<detail::W4DecodeArgs>& args = args_tl;
  chunks.clear();
  args.assign(n_outs, base);
  int nt = 1;
  for (int i = 0; i < n_outs; ++i) {
    const W4Matrix& w = *outs[i].w;
    args[i].y = outs[i].y;
    args[i].ldy = w.N;
    args[i].bias = outs[i].bias;
    nt = std::max(nt, decode_threads(w, M, 128.0 * 1024));
  }
  for (int i = 0; i < n_outs; ++i) {
    const int T = outs[i].w->n_tiles();
    const int chunk = decode_chunk_tiles(T, nt);
    for (int t0 = 0; t0 < T; t0 += chunk) chunks.push_back({i, t0, std::min(T, t0 + chunk)});
  }
  const auto run = [&](int c) {
    const Chunk& ch = chunks[c];
    kern.decode_i8(*outs[ch.out].w, args[ch.out], ch.t0, ch.t1);
  };
  if (nt == 1)
    for (int c = 0; c < (int)chunks.size(); ++c) run(c);
  else
    parallel_chunks((int)chunks.size(), nt, run);
}

void w4_dequantize_isa(Isa isa, const W4Matrix& w, float* out) {
  const detail::W4Kernels& kern = detail::w4_kernels(isa);
  const int T = w.n_tiles();
#pragma omp parallel for schedule(static)
  for (int t = 0; t < T; ++t) kern.dequant(w, t, t + 1, out + (size_t)t * 8 * w.K, w.K);
}

void w4_dequantize(const W4Matrix& w, float* out) { w4_dequantize_isa(w4_active_isa(), w, out); }

namespace detail {

W4Decode w4_resolve_decode(const char* requested, std::string* warning) {
  constexpr W4Decode kDefault = W4Decode::I8;
  if (!requested || !*requested) return kDefault;
  std::string v(requested);
  for (char& ch : v) ch = (char)std::tolower((unsigned char)ch);
  if (v == "f32") return W4Decode::F32;
  if (v == "i8") return W4Decode::I8;
  if (warning)
    *warning = "AWQ_DECODE=" + std::string(requested) + " is not one of f32|i8; using " +
               decode_name(kDefault);
  return kDefault;
}

void w4_quantize_x_row(const W4Matrix& w, const float* x, int8_t* xq, float* xd, float* xqs,
                       int sub_bytes) {
  static const bool avx512 = w4_isa_available(Isa::Avx512);
  if (avx512)
    w4_quantize_x_row_avx512(w, x, xq, xd, xqs, sub_bytes);
  else
    w4_quantize_x_row_sse2(w, x, xq, xd, xqs, sub_bytes);
}

void w4_quantize_x_row_sse2(const W4Matrix& w, const float* x, int8_t* xq, float* xd, float* xqs,
                            int sub_bytes) {
  const int G = w.group_size, nb = w.n_sub(), ab = w.act_sub(), na = w.n_act();
  const int n = 32 * ab;  // values per activation block
  const __m128 sign = _mm_set1_ps(-0.0f);
  alignas(16) float tmp[128];
  for (int g = 0; g < w.n_groups; ++g) {
    float qs = 0.0f;
    for (int j = 0; j < na; ++j) {
      const int k0 = n * j, len = std::min(n, G - k0);
      const float* src = x + (size_t)g * G + k0;
      if (len < n) {  // padding of the group: zeros
        std::memset(tmp, 0, sizeof(float) * n);
        std::memcpy(tmp, src, sizeof(float) * len);
        src = tmp;
      }
      __m128 amax = _mm_setzero_ps();
      for (int i = 0; i < n; i += 4) amax = _mm_max_ps(amax, _mm_andnot_ps(sign, _mm_loadu_ps(src + i)));
      amax = _mm_max_ps(amax, _mm_shuffle_ps(amax, amax, _MM_SHUFFLE(1, 0, 3, 2)));
      amax = _mm_max_ss(amax, _mm_shuffle_ps(amax, amax, _MM_SHUFFLE(2, 3, 0, 1)));
      const float am = _mm_cvtss_f32(amax);
      const float d = am / 127.0f, id = am > 0.0f ? 127.0f / am : 0.0f;
      const __m128 idv = _mm_set1_ps(id);
      __m128i sum = _mm_setzero_si128();
      for (int sb = 0; sb < ab; ++sb) {
        __m128i qi[8];
        for (int i = 0; i < 8; ++i) {
          qi[i] = _mm_cvtps_epi32(_mm_mul_ps(_mm_loadu_ps(src + 32 * sb + 4 * i), idv));  // nearest even
          sum = _mm_add_epi32(sum, qi[i]);
        }
        const __m128i lo =
            _mm_packs_epi16(_mm_packs_epi32(qi[0], qi[1]), _mm_packs_epi32(qi[2], qi[3]));
        const __m128i hi =
            _mm_packs_epi16(_mm_packs_epi32(qi[4], qi[5]), _mm_packs_epi32(qi[6], qi[7]));
        int8_t* dst = xq + (size_t)(g * nb + j * ab + sb) * sub_bytes;
        if (sub_bytes == 32) {
          _mm_storeu_si128(reinterpret_cast<__m128i*>(dst), lo);
          _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + 16), hi);
        } else {
          _mm_storeu_si128(reinterpret_cast<__m128i*>(dst), lo);
          _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + 16), lo);
          _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + 32), hi);
          _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + 48), hi);
        }
      }
      sum = _mm_add_epi32(sum, _mm_shuffle_epi32(sum, _MM_SHUFFLE(1, 0, 3, 2)));
      sum = _mm_add_epi32(sum, _mm_shuffle_epi32(sum, _MM_SHUFFLE(2, 3, 0, 1)));
      xd[g * na + j] = d;
      qs += d * (float)_mm_cvtsi128_si32(sum);
    }
    xqs[g] = qs;
  }
}

}  // namespace detail
}  // namespace awq
