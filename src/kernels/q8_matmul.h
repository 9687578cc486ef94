// 8-bit weight matmul for small M (decode): y[M][N] = x[M][K] · W[N][K]^T with W quantized to
// int8 in blocks of 32 along K, one fp16 scale per block (like ggml's Q8_0), and x quantized the
// same way per call. Used for the decode lm_head (docs/KERNELS.md, "8-bit lm_head"): 1.06 bytes
// per weight instead of 2 (fp16) or 4 (fp32).
//
// Layout (Q8Matrix), K padded to k_padded = K rounded up to 32 (padding codes are 0), rows in
// tiles of 16 (N padded to a multiple of 16 with zero codes and scales):
//   q  int8, [n_tiles][n_blk][8][16][4]: block b of tile t is 512 bytes, 8 steps of 4 k
//      positions (k = 32 b + 4 j + e) x 16 rows, 64-byte aligned; q in [-127, 127]
//   d  fp16 bits, [n_tiles][n_blk][16]: W[n][k] ~ d(n, k / 32) * q(n, k)
// (n_blk = k_padded / 32). One 64-byte load is 4 k positions of 16 rows, so a VNNI dot
// accumulates 16 rows' outputs in the 16 lanes of one register and the block scales apply
// once per block and 16 rows; Q8Matrix::code / scale read single elements.
// Weight quantization: per block amax = max |w|, d = the smallest fp16 value >= amax / 127 (so no
// code is clipped, also for fp16-subnormal scales), q = round(w / d) (nearest, ties to even), so
// |w - d q| <= d / 2; d = 0 gives q = 0.
// Activation quantization (every call, shared by all builds): per 32-block of a row of x,
// amax = max |x|, dx = amax / 127, q = round_nearest_even(x * (127 / amax)) (0 when amax = 0).
// Integer contract: y[m][n] = sum_b (d_w[n][b] * dx[m][b]) * sum_{k in b} q_w * q_x, the inner
// sum exact in int32; the builds differ only in the fp32 order of the outer sum.
// Portable build (ref/q8_ref.cpp), AVX2 build (cpu/q8_avx2.cpp) and AVX-512 VNNI build
// (cpu/q8_avx512.cpp), picked by w4_active_isa() (AWQ_ISA=scalar forces the portable one,
// AWQ_ISA=avx2 the AVX2 one).
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

#include "core/status.h"
#include "kernels/w4.h"  // AlignedAllocator, Isa

namespace awq {

struct Q8Matrix {
  static constexpr int kBlock = 32;  // k positions per scale
  static constexpr int kTile = 16;   // rows per tile
  static constexpr int kStepBytes = 4 * kTile;  // 4 k positions x 16 rows
  int N = 0, K = 0;
  int k_padded = 0;  // K rounded up to kBlock
  std::vector<int8_t, AlignedAllocator<int8_t>> q;      // [n_tiles][n_blk][8][16][4]
  std::vector<uint16_t, AlignedAllocator<uint16_t>> d;  // [n_tiles][n_blk][16] fp16 bits
  int n_blk() const { return k_padded / kBlock; }
  int n_tiles() const { return (N + kTile - 1) / kTile; }
  bool empty() const { return N == 0; }
  size_t q_index(int n, int k) const {
    return (((size_t)(n / kTile) * n_blk() + k / kBlock) * (kBlock / 4) + (k % kBlock) / 4) *
               kStepBytes + (size_t)(n % kTile) * 4 + k % 4;
  }
  size_t d_index(int n, int b) const {
    return ((size_t)(n / kTile) * n_blk() + b) * kTile + n % kTile;
  }
  int8_t code(int n, int k) const { return q[q_index(n, k)]; }     // 0 for padding
  uint16_t scale(int n, int b) const { return d[d_index(n, b)]; }  // fp16 bits
  // Block b of tile t: 8 steps of kStepBytes codes, and its 16 scales.
  const int8_t* tile_codes(int t, int b) const {
    return q.data() + ((size_t)t * n_blk() + b) * (kBlock / 4) * kStepBytes;
  }
  const uint16_t* tile_scales(int t, int b) const {
    return d.data() + ((size_t)t * n_blk() + b) * kTile;
  }
  // Bytes one pass over the weight streams (codes + scales).
  size_t bytes() const { return q.size() * sizeof(int8_t) + d.size() * sizeof(uint16_t); }
};
static_assert(Q8Matrix::kBlock == 32 && Q8Matrix::kTile == 16,
              "the kernels read 4 k x 16 rows per 64-byte step, 8 steps per block");

// Quantize W[N][K] (fp32, or fp16 bits). Errors: N or K not positive, a non-finite weight or one
// whose block scale overflows fp16 (|w| > 127 * 65504), named by its row and column.
Expected<Q8Matrix> q8_from_f32(const float* w, int N, int K);
Expected<Q8Matrix> q8_from_f16(const uint16_t* w, int N, int K);
// out[N][K] = d * q (fp32), for tests.
void q8_dequantize(const Q8Matrix& w, float* out);

// y[M][N] = x[M][K] · W^T with int8 activations (any M >= 0; meant for M <= 16). Rows of W are
// split across OpenMP threads in chunks.
void q8_matmul(const Q8Matrix& w, const float* x, int M, float* y);

namespace detail {
// Quantizes one row of x (K values) into k_padded int8 values (xq) and k_padded / 32 scales
// (xd), as described above. Shared by every build.
void q8_quantize_x_row(const float* x, int K, int k_padded, int8_t* xq, float* xd);
// Rows [n0, n1) of y for M rows of quantized x (xq [M][w.k_padded], xd [M][w.n_blk()]); n0 a
// multiple of Q8Matrix::kTile. Single-threaded; the driver splits N.
using Q8RowsFn = void (*)(const Q8Matrix& w, const int8_t* xq, const float* xd, int M, int n0,
                          int n1, float* y, int ldy);
Q8RowsFn q8_rows_ref();
Q8RowsFn q8_rows_avx2();  // only call when the host has AVX2 (w4_isa_available(Isa::Avx2))
Q8RowsFn q8_rows_avx512();  // only call when w4_isa_available(Isa::Avx512)
// The build q8_matmul uses for a given ISA (ref, avx2 or avx512; the ISA must be available).
Q8RowsFn q8_rows_for(Isa isa);
void q8_matmul_with(Q8RowsFn fn, const Q8Matrix& w, const float* x, int M, float* y);
}  // namespace detail

}  // namespace awq
