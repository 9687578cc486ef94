// Dequantization of ggml block formats to fp32 (scalar reference code).
// Supported: F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

#include "core/status.h"

namespace awq {

// True if dequantize_ggml() handles this ggml type number.
bool ggml_can_dequantize(uint32_t type);

// Dequantize n elements (a multiple of the type's block size) from src (nbytes long) to dst.
// `what` (e.g. "model.gguf: tensor \"blk.0.attn_q.weight\"") prefixes error messages.
Status dequantize_ggml(uint32_t type, const uint8_t* src, size_t nbytes, float* dst, size_t n,
                       const std::string& what);

}  // namespace awq
