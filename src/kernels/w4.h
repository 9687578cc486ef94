// W4 (AWQ 4-bit, asymmetric, per-group) matrix storage and matmul kernels.
//
// Logical weight W[N][K] (N outputs, K inputs), group size G along K:
//   W[n][k] = (q[n][k] - z[n][k/G]) * s[n][k/G],   q, z in [0, 15], s an fp16 value.
//
// Repacked CPU layout (W4Matrix::data, 64-byte aligned, uint32 words)
// -------------------------------------------------------------------
// Rows are taken 8 at a time ("tiles": rows 8t .. 8t+7; N % 8 == 0 so there is no row tail).
// Each tile is n_groups group blocks, one after the other; each group block is
//   group_len words of codes   word[k] (k = 0 .. group_len-1, k local to the group):
//                              nibble i (bits 4i..4i+3) = q[8t+i][g*G+k] for i = 0..6,
//                              nibble 7 (bits 28..31)   = q[8t+7][g*G+k] XOR 8
//   a 32-byte W4GroupHeader: fp16 scale[i] = s[8t+i][g], int8 zero[i] = z[8t+i][g] - (i==7 ? 8 : 0)
// so group stride = group_len + 8 words, tile stride = n_groups * group stride.
// Masking nibble i of a word (word & (0xF << 4i)) and converting the int32 to float gives exactly
// q*16^i (i < 7) or (q - 8)*2^28 (i == 7: the XOR makes the top nibble a signed value, so no
// shift is needed). With sf[i] = s*16^-i (2^-28 for i = 7) and zs[i] = -zero[i]*s, computed
// once per group by the kernels,  w = masked * sf[i] + zs[i]  reproduces (q - z) * s exactly.
// A k-block of 8 (AVX2) or 16 (AVX-512) consecutive words holds 8 rows x 8/16 k positions, so one
// vector load + AND + convert yields 8/16 weights of one row, vectorised along k.
// The matmul kernels factor the group: y += sf * sum_k(masked * x) + zs * sum_k(x).
//
// group_size: any multiple of 16 that divides K (32, 64, 128 in practice), or -1 / K for one
// group per row (per-channel). group_len = group_size, except per-channel, where it is K rounded
// up to a multiple of 16 (the padding codes are 0 and the kernels pad x with zeros).
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <new>
#include <vector>

#include "core/status.h"

namespace awq {

// Per (tile, group) header after the group's code words.
struct W4GroupHeader {
  uint16_t scale[8];  // fp16 bits of s[8t+i][g]
  int8_t zero[8];     // z[8t+i][g], minus 8 for i == 7 (row 7's codes are stored XOR 8)
  uint8_t pad[8];     // keeps group blocks 32-byte aligned
};
static_assert(sizeof(W4GroupHeader) == 32, "header is 8 code words");

// Minimal 64-byte aligned allocator so std::vector storage suits aligned vector loads.
template <class T>
struct AlignedAllocator {
  using value_type = T;
  AlignedAllocator() = default;
  template <class U>
  AlignedAllocator(const AlignedAllocator<U>&) {}  // NOLINT(implicit)
  T* allocate(size_t n) {
    void* p = ::operator new(n * sizeof(T), std::align_val_t(64));
    return static_cast<T*>(p);
  }
  void deallocate(T* p, size_t) { ::operator delete(p, std::align_val_t(64)); }
  template <class U>
  bool operator==(const AlignedAllocator<U>&) const {
    return true;
  }
};

// A linear layer's weight in AWQ 4-bit groups, repacked at load time for the CPU kernels.
struct W4Matrix {
  int K = 0, N = 0, group_size = 0;  // group_size == K for per-channel
  int n_groups = 0;                  // K / group_size
  int group_len = 0;                 // code words per group block (see layout above)
  std::vector<uint32_t, AlignedAllocator<uint32_t>> data;  // [N/8 tiles][n_groups][group_len + 8]

  static constexpr int kTileRows = 8;
  static constexpr int kHeaderWords = sizeof(W4GroupHeader) / sizeof(uint32_t);
  int n_tiles() const { return N / kTileRows; }
  size_t group_stride() const { return (size_t)group_len + kHeaderWords; }
  size_t tile_stride() const { return (size_t)n_groups * group_stride(); }
  const uint32_t* group_block(int tile, int g) const {
    return data.data() + (size_t)tile * tile_stride() + (size_t)g * group_stride();
  }
  const W4GroupHeader* group_header(int tile, int g) const {
    return reinterpret_cast<const W4GroupHeader*>(group_block(tile, g) + group_len);
  }
  // K padded to the code words actually stored (== K unless per-channel with K % 16 != 0).
  int k_padded() const { return n_groups * group_len; }
  // Bytes the kernels stream for one pass over the weight (codes + per-group headers).
  size_t packed_bytes() const { return data.size() * sizeof(uint32_t); }
};

// From the AutoAWQ GEMM tensors: qweight int32 [K, N/8], qzeros int32 [K/G, N/8],
// scales fp16 [K/G, N] (pack order [0,2,4,6,1,3,5,7]). group_size -1 means per-channel.
Expected<W4Matrix> w4_from_awq(const int32_t* qweight, const int32_t* qzeros,
                               const uint16_t* scales_fp16, int K, int N, int group_size);
// From unpacked codes q [N][K] in [0,15], zeros z [N][K/G] in [0,15], scales s [N][K/G]
// (rounded to fp16, as the checkpoint stores them).
Expected<W4Matrix> w4_from_codes(const uint8_t* q, const uint8_t* z, const float* s, int K, int N,
                                 int group_size);

enum class Isa { Scalar, Avx2, Avx512 };

// y[M][N] = x[M][K] · W^T (+ bias[N] if non-null). x and y are dense row-major.
// Dispatches to w4_active_isa().
void w4_matmul(const W4Matrix& w, const float* x, int M, float* y, const float* bias = nullptr);
// out[N][K] = (q - z) * s, bit-exact on every ISA.
void w4_dequantize(const W4Matrix& w, float* out);

Isa w4_active_isa();                   // AWQ_ISA=scalar|avx2|avx512 if the host has it, else best
std::vector<Isa> w4_available_isas();  // what this host can run (Scalar first)
bool w4_isa_available(Isa isa);
// Same as w4_matmul on a given ISA (tests, benchmarks). The ISA must be available.
void w4_matmul_isa(Isa isa, const W4Matrix& w, const float* x, int M, float* y,
                   const float* bias = nullptr);
void w4_dequantize_isa(Isa isa, const W4Matrix& w, float* out);
const char* isa_name(Isa isa);

// Decode (weight-streaming) kernel up to this many rows of x; larger M dequantizes tiles of W
// to fp32 and runs sgemm. Exposed for tests/benchmarks: 0 = always sgemm, < 0 restores the
// default. Not thread-safe with respect to concurrent matmuls that expect another setting.
void w4_set_decode_max_m(int m);
int w4_decode_max_m();

}  // namespace awq
