// Internal: the per-ISA W4 kernel entry points behind w4_matmul / w4_dequantize.
// Each ISA lives in its own file (ref/w4_ref.cpp, cpu/w4_avx2.cpp, cpu/w4_avx512.cpp), compiled
// with its own flags; cpu/dispatch.cpp picks one table per call.
#pragma once
#include <string>

#include "kernels/w4.h"

namespace awq::detail {

// Inputs of the weight-streaming (decode) kernels, prepared once per call by the driver
// (w4_matmul.cpp). Group g of row m of x starts at k_padded index g * w.group_len; positions past
// group_size inside a group (padding) are zero.
struct W4DecodeArgs {
  int M;              // rows of x
  float* y;           // [M][ldy]
  int ldy;            // >= w.N
  const float* bias;  // [N] or nullptr
  // F32 path
  const float* x;     // [M][ldx], x laid out per padded group (w.k_padded() columns)
  int ldx;            // >= w.k_padded()
  const float* xsum;  // [M][w.n_groups]: sum of x over each group
  // I8 path: 32-value sub-blocks b (global index over the padded k, n_blk = w.k_padded() / 32),
  // quantized with one scale per activation block of w.act_sub() sub-blocks (index j over the
  // row, n_act_row = w.n_groups * w.n_act()).
  const int8_t* xq;  // [M][n_blk][xq_sub_bytes(isa)]: per block, duplicated (64 bytes: AVX2 and
                     //   scalar, 128-bit lanes): bytes 0..15 = q[0..15] and again at 16..31,
                     //   bytes 32..47 = q[16..31] and again at 48..63; compact (32 bytes:
                     //   AVX-512, which broadcasts 16 bytes itself): q[0..31]
  size_t ldxq;       // bytes per row of xq (= xq_sub_bytes(isa) * n_blk)
  const float* xd;   // [M][ldxd]: activation block scale d (x ~ d * q)
  int ldxd;          // = n_act_row
  const float* xqs;  // [M][w.n_groups]: sum over the group's activation blocks of d * sum(q)
};

// Bytes per 32-value sub-block of W4DecodeArgs::xq for the I8 kernel of an ISA. The AVX-512
// kernel reads the compact layout: half the bytes to write, move between the cores and keep in
// L1 (32 rows of x at K = 576: 18 KB instead of 37 KB).
constexpr int xq_sub_bytes(Isa isa) { return isa == Isa::Avx512 ? 32 : 64; }

// Quantizes one row of x (K values, groups of w.group_size, padded per group to w.group_len) to
// the I8 operands above (sub_bytes = 64 duplicated or 32 compact, see xq_sub_bytes): per
// activation block (w.act_sub() x 32 values, padding included as zeros), amax = max |x|,
// d = amax / 127, id = 127 / amax (both 0 when amax == 0), q = round_to_nearest_even(x * id).
// Shared by every ISA.
void w4_quantize_x_row(const W4Matrix& w, const float* x, int8_t* xq, float* xd, float* xqs,
                       int sub_bytes);
// The same, bit for bit, with AVX-512 (16 values per instruction instead of 4); only call when
// the host has the AVX-512 set. w4_quantize_x_row uses it when it does.
void w4_quantize_x_row_avx512(const W4Matrix& w, const float* x, int8_t* xq, float* xd, float* xqs,
                              int sub_bytes);
void w4_quantize_x_row_sse2(const W4Matrix& w, const float* x, int8_t* xq, float* xd, float* xqs,
                            int sub_bytes);

// y rows for output tiles [tile_begin, tile_end) (rows 8*tile_begin ..). Single-threaded; the
// driver splits tiles across threads.
// decode: the F32 path (a.x, a.xsum); decode_i8: the I8 path (a.xq, a.xd, a.xqs).
using W4DecodeFn = void (*)(const W4Matrix& w, const W4DecodeArgs& a, int tile_begin, int tile_end);
// out[r][k] = W[8*tile_begin + r][k] for k < w.K (bit-exact (q - z) * s); ldo >= w.K.
using W4DequantFn = void (*)(const W4Matrix& w, int tile_begin, int tile_end, float* out,
                             size_t ldo);

struct W4Kernels {
  Isa isa;
  W4DecodeFn decode;
  W4DecodeFn decode_i8;
  W4DequantFn dequant;
};

W4Kernels w4_kernels_scalar();
W4Kernels w4_kernels_avx2();    // only call when the host has AVX2+FMA+F16C+BMI2
W4Kernels w4_kernels_avx512();  // only call when the host has the AVX-512 set in CMakeLists

// What AWQ_ISA=<requested> selects on this host (nullptr/empty: the best available). Sets
// *warning when the request is unknown or unsupported and a fallback was chosen.
Isa w4_resolve_isa(const char* requested, std::string* warning);

// What AWQ_DECODE=<requested> selects (nullptr/empty: the default, I8). Sets *warning when the
// value is unknown.
W4Decode w4_resolve_decode(const char* requested, std::string* warning);

// The table for an ISA (must be available on this host).
const W4Kernels& w4_kernels(Isa isa);

}  // namespace awq::detail
