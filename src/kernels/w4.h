// W4 (AWQ 4-bit, asymmetric, per-group) matrix storage and matmul kernels.
//
// Logical weight W[N][K] (N outputs, K inputs), group size G along K:
//   W[n][k] = (q[n][k] - z[n][k/G]) * s[n][k/G],   q, z in [0, 15], s an fp16 value.
//
// Repacked CPU layout (W4Matrix::data, 64-byte aligned bytes)
// ------------------------------------------------------------
// Rows are taken 8 at a time ("tiles": rows 8t .. 8t+7; N % 8 == 0 so there is no row tail).
// Each tile is n_groups group blocks, one after the other. A group block is
//   group_len / 32 sub-blocks of 128 code bytes, then a 32-byte W4GroupHeader.
// Sub-block b covers k = g*G + 32b + (0 .. 31) (k local to the group; k >= G is padding, code 0)
// for the 8 rows of the tile, as 4 row pairs of 32 bytes:
//   bytes [32p, 32p + 16)      : row p      (p = 0..3)
//   bytes [32p + 16, 32p + 32) : row p + 4
// and in the 16 bytes of one row, byte j holds  low nibble = q[k = 32b + j],
//                                               high nibble = q[k = 32b + 16 + j].
// Header: fp16 scale[i] = s[8t+i][g], uint8 zero[i] = z[8t+i][g] (plain codes, no offset).
// group_len = G rounded up to a multiple of 32 (padding only for G % 32 != 0 or per-channel
// K % 32 != 0), group stride = 4 * group_len + 32 bytes: the same 4.25 bits per weight at G = 128
// as AutoAWQ's tensors (4G + 20 bytes per 8 rows x G) plus the 12-byte header pad.
//
// Why this layout (see docs/KERNELS.md): one 32-byte load is 64 codes of a row pair; AND 0x0F
// and (>> 4) & 0x0F give the u8 operands of _mm256_maddubs_epi16 against int8 activations
// (decode path "i8"), four sub-blocks' worth of pairs reduce with three horizontal adds to the 8
// rows in natural order. The exact fp32 path ("f32") widens a row's 16 bytes to 4 x 8 floats.
// Dequantization is q * s + (-z * s) in one FMA, exactly (q - z) * s (a 5-bit integer times an
// fp16 value is exact in fp32), so every ISA's w4_dequantize is bit-identical to the reference.
//
// group_size: any multiple of 16 that divides K (32, 64, 128 in practice), or -1 / K for one
// group per row (per-channel).
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
  uint8_t zero[8];    // z[8t+i][g] in [0, 15]
  uint8_t pad[8];     // keeps group blocks 32-byte aligned
};
static_assert(sizeof(W4GroupHeader) == 32, "header is a quarter of a sub-block");

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
  int group_len = 0;                 // k positions stored per group: group_size rounded up to 32
  std::vector<uint8_t, AlignedAllocator<uint8_t>> data;  // [N/8 tiles][n_groups][group stride]

  static constexpr int kTileRows = 8;
  static constexpr int kSubK = 32;       // k positions per sub-block
  static constexpr int kSubBytes = 128;  // code bytes per sub-block (8 rows x 32 k x 4 bit)
  static constexpr int kHeaderBytes = sizeof(W4GroupHeader);
  int n_tiles() const { return N / kTileRows; }
  int n_sub() const { return group_len / kSubK; }  // sub-blocks per group
  // Sub-blocks per activation block of the I8 decode path (one int8 scale per block): the
  // largest of 4, 3, 2, 1 that divides n_sub(), i.e. the whole group up to 128 values.
  int act_sub() const { return act_sub_of(n_sub()); }
  static constexpr int act_sub_of(int nb) {
    return nb % 4 == 0 ? 4 : nb % 3 == 0 ? 3 : nb % 2 == 0 ? 2 : 1;
  }
  int n_act() const { return n_sub() / act_sub(); }  // activation blocks per group
  size_t group_stride() const { return (size_t)n_sub() * kSubBytes + kHeaderBytes; }
  size_t tile_stride() const { return (size_t)n_groups * group_stride(); }
  const uint8_t* group_block(int tile, int g) const {
    return data.data() + (size_t)tile * tile_stride() + (size_t)g * group_stride();
  }
  const W4GroupHeader* group_header(int tile, int g) const {
    return reinterpret_cast<const W4GroupHeader*>(group_block(tile, g) +
                                                  (size_t)n_sub() * kSubBytes);
  }
  // The 16 code bytes of row r (0..7) of a tile in sub-block b of a group block.
  static size_t row_offset(int r, int b) {
    return (size_t)b * kSubBytes + (r % 4) * 32 + (r / 4) * 16;
  }
  // K padded to the k positions actually stored (== K when group_size % 32 == 0).
  int k_padded() const { return n_groups * group_len; }
  // Bytes the kernels stream for one pass over the weight (codes + per-group headers).
  size_t packed_bytes() const { return data.size(); }
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

// Activations of the decode (weight-streaming) path:
//  F32: exact fp32 (sum_k x * (q - z) * s in fp32; the reference path).
//  I8:  each activation block of a row of x (W4Matrix::act_sub() sub-blocks of 32 values: the
//       whole group up to 128 values) quantized to int8 with one fp32 scale (symmetric,
//       amax / 127, round to nearest even); integer dot products with the 4-bit codes, summed
//       in int32 over the block and scaled once per block (see docs/KERNELS.md).
// The prefill path (dequantize + sgemm) is always fp32.
enum class W4Decode { F32, I8 };

// y[M][N] = x[M][K] · W^T (+ bias[N] if non-null). x and y are dense row-major.
// Dispatches to w4_active_isa().
void w4_matmul(const W4Matrix& w, const float* x, int M, float* y, const float* bias = nullptr);
// out[N][K] = (q - z) * s, bit-exact on every ISA.
void w4_dequantize(const W4Matrix& w, float* out);

// Several matrices that read the same x (q/k/v, gate/up): y_i = x · W_i^T (+ bias_i), each y_i
// bit-identical to w4_matmul(*w_i, x, M, y_i, bias_i). On the I8 decode path, when the matrices
// share K and group size, x is quantized once (not once per matrix) and the output tiles of all
// of them are split across the threads in one parallel region; otherwise one call per matrix.
struct W4Out {
  const W4Matrix* w;
  float* y;
  const float* bias = nullptr;
};
void w4_matmul_multi(const W4Out* outs, int n_outs, const float* x, int M);

Isa w4_active_isa();                   // AWQ_ISA=scalar|avx2|avx512 if the host has it, else best
std::vector<Isa> w4_available_isas();  // what this host can run (Scalar first)
bool w4_isa_available(Isa isa);
// Same as w4_matmul on a given ISA (tests, benchmarks). The ISA must be available.
void w4_matmul_isa(Isa isa, const W4Matrix& w, const float* x, int M, float* y,
                   const float* bias = nullptr);
// Same with an explicit decode-path activation type (tests, benchmarks).
void w4_matmul_isa(Isa isa, W4Decode mode, const W4Matrix& w, const float* x, int M, float* y,
                   const float* bias = nullptr);
void w4_dequantize_isa(Isa isa, const W4Matrix& w, float* out);
const char* isa_name(Isa isa);

// Decode (weight-streaming) kernel up to this many rows of x; larger M dequantizes tiles of W
// to fp32 and runs sgemm. Exposed for tests/benchmarks: 0 = always sgemm, < 0 restores the
// default. Not thread-safe with respect to concurrent matmuls that expect another setting.
void w4_set_decode_max_m(int m);
int w4_decode_max_m();

// The decode path's activation type used by w4_matmul / w4_matmul_isa: AWQ_DECODE=f32|i8 read
// once (unknown values warn on stderr and use the default, I8), unless set here.
W4Decode w4_decode_mode();
void w4_set_decode_mode(W4Decode mode);
const char* decode_name(W4Decode mode);

}  // namespace awq
