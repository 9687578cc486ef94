// compressed-tensors "pack-quantized" checkpoints: the layout vLLM's llm-compressor writes for
// weight-only integer quantization (W4A16, W8A16; asymmetric group or channel). docs/FORMAT.md.
//
// Per quantized linear <prefix> with N outputs, K inputs, b bits, G group size (K for channel),
// ng = K / G groups:
//   <prefix>.weight_packed      I32 [N, ceil(K*b/32)]  codes packed along K
//   <prefix>.weight_scale       F16 [N, ng]            (the model dtype; BF16/F32 also read)
//   <prefix>.weight_zero_point  I32 [ceil(N*b/32), ng] zero points packed along N (asymmetric only)
//   <prefix>.weight_shape       I64 [2]                {N, K}
// Packing (compressed_tensors pack_to_int32): a signed value v in [-2^(b-1), 2^(b-1)-1] is
// stored as the unsigned code v + 2^(b-1); element i of the packed line occupies bits
// [i*b, i*b + b) of the line's little-endian bit stream (word i*b/32, straddling into the next
// word when 32 % b != 0). Dequantization: w = (v - zp) * scale = (code - zp_code) * scale, i.e.
// exactly our asymmetric arithmetic with code = q and zp_code = z; symmetric: zp_code = 2^(b-1).
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/status.h"
#include "io/safetensors.h"

namespace awq {

// The one weight scheme we write and read (one config group targeting every Linear).
struct CtWeightScheme {
  int num_bits = 4;       // 2..8 (vLLM's WNA16 kernels load 4 and 8)
  int group_size = 128;   // > 0: strategy "group"; -1: strategy "channel" (one group of K)
  bool symmetric = false;
};

// int32 words for n b-bit values: ceil(n * b / 32).
int64_t ct_packed_words(int64_t n, int bits);
// codes [rows][cols] (each < 2^bits) packed along cols -> [rows][ct_packed_words(cols, bits)].
std::vector<int32_t> ct_pack_rows(const uint8_t* codes, int64_t rows, int64_t cols, int bits);
// The inverse: words [rows][ct_packed_words(cols, bits)] -> codes [rows][cols].
std::vector<uint8_t> ct_unpack_rows(const int32_t* words, int64_t rows, int64_t cols, int bits);
// codes [rows][cols] packed along rows (zero points) -> [ct_packed_words(rows, bits)][cols].
std::vector<int32_t> ct_pack_cols(const uint8_t* codes, int64_t rows, int64_t cols, int bits);
// The inverse: words [ct_packed_words(rows, bits)][cols] -> codes [rows][cols].
std::vector<uint8_t> ct_unpack_cols(const int32_t* words, int64_t rows, int64_t cols, int bits);

// config.json "quantization_config" for a pack-quantized checkpoint of `s`: one config group
// "group_0" targeting "Linear", no activation quantization, quantization_status "compressed",
// and `ignore` (module names or "re:" regexes of Linear modules left dense, lm_head included).
nlohmann::ordered_json ct_quantization_config(const CtWeightScheme& s,
                                              const std::vector<std::string>& ignore);

// Reads a compressed-tensors quantization_config and refuses, naming the field, everything this
// engine does not implement: another format than pack-quantized, several config groups, targets
// other than Linear, float or non-2..8-bit weights, strategies other than group/channel,
// activation (input/output) quantization, dynamic weights, actorder other than null/"weight",
// block structures, sparsity, transforms, KV-cache quantization, status other than compressed.
// src: the file name for messages.
Expected<CtWeightScheme> parse_ct_quantization_config(const nlohmann::json& q,
                                                      const std::string& src);

// One quantized linear read from a checkpoint, unpacked: w[n][k] = (q[n][k] - z[n][k/G]) * s[n][k/G].
struct CtLinearCodes {
  int N = 0, K = 0, group_size = 0, bits = 4;  // group_size: the effective G (K for channel)
  std::vector<uint8_t> q;      // [N][K] unsigned codes
  std::vector<uint8_t> z;      // [N][K/G] zero-point codes (2^(b-1) for symmetric)
  std::vector<float> scales;   // [N][K/G]
  bool scales_fp16_exact = true;  // every scale is an fp16 value (F16 files; BF16/F32 checked)
};
// Reads <prefix>.weight_packed/.weight_scale/.weight_zero_point/.weight_shape for a linear
// with N outputs and K inputs. Errors name the tensor and its file with expected vs actual
// dtype and shape; a .weight_g_idx tensor (activation reordering) is refused.
Expected<CtLinearCodes> load_ct_linear(const SafeTensors& st, const std::string& prefix,
                                       const CtWeightScheme& s, int N, int K);

}  // namespace awq
