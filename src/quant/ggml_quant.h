// Quantization of weight rows to ggml block types (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0 in blocks of 32;
// the K-quants Q4_K, Q5_K, Q6_K in super-blocks of 256; F16 and F32 stored as they are), for
// `awq quantize --format gguf`. The bytes are llama.cpp's block layouts
// (ggml-common.h; io/gguf_dequant.cpp reads them back).
//
// Each 32-weight block (K-quants: each sub-block, then the super-block's 6/8-bit scale grid)
// minimises the importance-weighted squared error
//   sum_j imp[j] * (x[j] - dequant(q)[j])^2
// over a set of candidate scales (and, for Q4_1, offsets), each followed by a weighted
// least-squares refit of the block's fp16 scale/offset to the chosen codes; the error is always
// measured with the scale/offset rounded to fp16 as stored. imp[j] is the mean of the squared
// (AWQ-scaled) activation of input channel j over the calibration tokens: under the diagonal
// approximation of the input covariance, sum_j imp[j] * dw[j]^2 is the expected squared output
// error of the row. The candidates always include llama.cpp's plain reference rounding
// (quantize_row_*_ref), so a block is never worse than it under its own importance.
// Without importance (imp == nullptr) every channel weighs the same.
#pragma once
#include <cstddef>
#include <cstdint>

#include "core/status.h"
#include "io/gguf.h"

namespace awq {

// True for the types quantize_row_ggml() writes: F32, F16 and the block types below.
bool ggml_can_quantize(GGMLType t);
// Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q4_K, Q5_K, Q6_K (quantized in blocks), as opposed to F16/F32.
bool ggml_is_block_type(GGMLType t);
// Weights per block: 32, 256 for the K-quants, 1 for F16/F32.
int ggml_block_elems(GGMLType t);
// Bytes of one row of n elements (n a multiple of the type's block size).
size_t ggml_row_bytes(GGMLType t, int64_t n);

// Quantize one row of n values (n a multiple of ggml_block_elems(t)) into out
// (ggml_row_bytes(t, n) bytes). imp: n non-negative importances or nullptr.
// Errors: unsupported type, n not a multiple of the block size, a non-finite value.
Status quantize_row_ggml(GGMLType t, const float* x, int64_t n, const float* imp, uint8_t* out);

// Quantize-dequantize the rows of W [N][K] in place with quantize_row_ggml (the same importance
// for every row), parallel over rows: what a loader of the GGUF file computes. Non-finite rows
// are left as they are (the writer reports them).
void fake_quantize_ggml(GGMLType t, float* W, int64_t N, int64_t K, const float* imp);

// llama.cpp's reference rounding of one block (no search; what quantize_row_*_ref does), for
// tests and for comparison: writes one block of t (Q4_0, Q4_1, Q5_0, Q5_1 or Q8_0) from 32
// values.
void quantize_block_reference(GGMLType t, const float* x, uint8_t* out);

}  // namespace awq
